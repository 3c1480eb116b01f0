package traffic

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
)

// The TCP clients (Bulk, TCPStream) and the benchmark harness's
// request/response client use their own sockets on locked OS threads, like
// iperf3 and netperf do, rather than Go's net package: a socket parked in
// the runtime's poller costs an epoll wake-up and a goroutine switch each
// time the send buffer fills or a reply arrives, which on a two-core
// machine was itself a limit of the measurement (the harness's old Go TCP
// sender read 2.6 Gbit/s where iperf3 read 4.1-4.7 on the same kernel
// testbed).

// Sock is a blocking socket's descriptor.
type Sock int

func sockaddr(a netip.AddrPort) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
}

// setTimeouts bounds every blocking call on fd (SO_RCVTIMEO, SO_SNDTIMEO),
// so that a path that stops forwarding ends a step with an error instead
// of hanging it.
func setTimeouts(fd int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

// OpenSock creates a blocking socket of type typ in ns, bound to bind when
// it is valid, with the timeouts of setTimeouts.
func OpenSock(ns *testbed.NS, typ int, bind netip.AddrPort, timeout time.Duration) (Sock, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
		if err := setTimeouts(fd, timeout); err != nil {
			return fmt.Errorf("socket timeouts: %w", err)
		}
		if bind.IsValid() {
			if err := unix.Bind(fd, sockaddr(bind)); err != nil {
				return fmt.Errorf("bind %s: %w", bind, err)
			}
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("in %s: %w", ns.Name, err)
	}
	return Sock(fd), nil
}

// ListenTCP opens a listening TCP socket on addr in ns.
func ListenTCP(ns *testbed.NS, addr netip.AddrPort, timeout time.Duration) (Sock, error) {
	s, err := OpenSock(ns, unix.SOCK_STREAM, addr, timeout)
	if err != nil {
		return -1, err
	}
	if err := unix.Listen(int(s), 16); err != nil {
		unix.Close(int(s))
		return -1, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s, nil
}

// DialTCP connects a TCP socket from ns to addr, with TCP_NODELAY when
// nodelay is set.
func DialTCP(ns *testbed.NS, addr netip.AddrPort, nodelay bool, timeout time.Duration) (Sock, error) {
	s, err := OpenSock(ns, unix.SOCK_STREAM, netip.AddrPort{}, timeout)
	if err != nil {
		return -1, err
	}
	if nodelay {
		if err := unix.SetsockoptInt(int(s), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			unix.Close(int(s))
			return -1, fmt.Errorf("TCP_NODELAY: %w", err)
		}
	}
	if err := s.Connect(addr); err != nil {
		unix.Close(int(s))
		return -1, fmt.Errorf("connect to %s from %s: %w", addr, ns.Name, err)
	}
	return s, nil
}

// Accept waits for one connection on l (bounded by l's receive timeout);
// the connection gets TCP_NODELAY when nodelay is set.
func (l Sock) Accept(nodelay bool) (Sock, error) {
	var nfd int
	err := retryEINTR(func() (err error) {
		nfd, _, err = unix.Accept4(int(l), unix.SOCK_CLOEXEC)
		return err
	})
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			err = errors.New("no connection within the timeout")
		}
		return -1, fmt.Errorf("accept: %w", err)
	}
	if err := setTimeouts(nfd, 5*time.Second); err != nil {
		unix.Close(nfd)
		return -1, err
	}
	if nodelay {
		unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	return Sock(nfd), nil
}

// Connect connects s to addr.
func (s Sock) Connect(addr netip.AddrPort) error {
	return retryEINTR(func() error { return unix.Connect(int(s), sockaddr(addr)) })
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// ReadFull reads exactly len(b) bytes from a stream socket.
func (s Sock) ReadFull(b []byte) error {
	for got := 0; got < len(b); {
		n, err := unix.Read(int(s), b[got:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n == 0 {
			return errors.New("connection closed by the peer")
		}
		got += n
	}
	return nil
}

// WriteFull writes all of b to a stream socket.
func (s Sock) WriteFull(b []byte) error {
	for sent := 0; sent < len(b); {
		n, err := unix.Write(int(s), b[sent:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		sent += n
	}
	return nil
}

// Close closes the socket.
func (s Sock) Close() { unix.Close(int(s)) }
