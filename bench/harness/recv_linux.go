package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
)

// vlen is the number of datagrams one recvmmsg call may return.
const vlen = 64

// maxLatencySamples bounds the one-way delay samples kept per socket.
const maxLatencySamples = 1 << 20

// mmsghdr is struct mmsghdr of linux/socket.h.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// flowCheck tracks the sequence numbers of one receiver: the generator's
// packet s belongs to flow s % flows and is that flow's packet s / flows.
type flowCheck struct {
	flows   uint64
	seqs    []traffic.Seq
	lat     []float64 // one-way delays in µs, every 4th packet
	nth     uint64
	packets atomic.Uint64 // readable while running
}

func newFlowCheck(flows int) *flowCheck {
	return &flowCheck{flows: uint64(flows), seqs: make([]traffic.Seq, flows)}
}

// add records a payload that starts with the sequence number and the send
// time (gen's layout); now is CLOCK_MONOTONIC in ns.
func (c *flowCheck) add(p []byte, now int64) {
	if len(p) < 8 {
		return
	}
	s := binary.BigEndian.Uint64(p)
	c.seqs[s%c.flows].Add(s / c.flows)
	c.packets.Add(1)
	c.nth++
	if len(p) >= 16 && c.nth%4 == 0 && len(c.lat) < maxLatencySamples {
		sent := int64(binary.BigEndian.Uint64(p[8:]))
		if d := now - sent; d > 0 && d < int64(time.Minute) {
			c.lat = append(c.lat, float64(d)/1e3)
		}
	}
}

// totals sums several receivers' checks.
func totals(cs []*flowCheck) (recv, ooo, dups, jumps uint64, lat []float64) {
	for _, c := range cs {
		for i := range c.seqs {
			recv += c.seqs[i].Received
			ooo += c.seqs[i].OutOfOrder
			dups += c.seqs[i].Duplicates
			jumps += c.seqs[i].Jumps
		}
		lat = append(lat, c.lat...)
	}
	return
}

// udpReceiver is n SO_REUSEPORT sockets on one address in a namespace,
// each read by its own goroutine with recvmmsg.
type udpReceiver struct {
	conns  []*net.UDPConn
	checks []*flowCheck
	wg     sync.WaitGroup
	// drops are the datagrams the kernel dropped at these sockets
	// (receive buffer full), read by drain before it closes them; -1
	// when they could not be read.
	drops int64
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// listenUDP opens n sockets on addr:port in ns and starts reading.
func listenUDP(ns *testbed.NS, addr string, n, flows int) (*udpReceiver, error) {
	r := &udpReceiver{}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
			}
		})
		return errors.Join(err, serr)
	}}
	err := ns.Do(func() error {
		for range n {
			pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
			if err != nil {
				return err
			}
			r.conns = append(r.conns, pc.(*net.UDPConn))
		}
		return nil
	})
	if err != nil {
		r.close()
		return nil, fmt.Errorf("opening receivers on %s in %s: %w", addr, ns.Name, err)
	}
	for _, c := range r.conns {
		chk := newFlowCheck(flows)
		r.checks = append(r.checks, chk)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			readLoop(c, chk)
		}()
	}
	return r, nil
}

// readLoop reads c with recvmmsg until it is closed.
func readLoop(c *net.UDPConn, chk *flowCheck) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	bufs := make([]byte, vlen*2048)
	iovs := make([]unix.Iovec, vlen)
	hdrs := make([]mmsghdr, vlen)
	for i := range hdrs {
		iovs[i].Base = &bufs[i*2048]
		iovs[i].SetLen(2048)
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	for {
		var got int
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), vlen, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			got, errno = int(r), e
			return true
		})
		if err != nil {
			return // closed
		}
		if errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			return
		}
		now := monoNow()
		for i := range got {
			chk.add(bufs[i*2048:i*2048+int(hdrs[i].n)], now)
		}
	}
}

// received returns the datagrams read so far.
func (r *udpReceiver) received() uint64 {
	var n uint64
	for _, c := range r.checks {
		n += c.packets.Load()
	}
	return n
}

// drain waits until nothing more arrives for quiet (at most limit), reads
// the sockets' drop counts, then closes the sockets and waits for the
// readers.
func (r *udpReceiver) drain(quiet, limit time.Duration) {
	end := time.Now().Add(limit)
	last, since := r.received(), time.Now()
	for time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
		if n := r.received(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
	}
	r.drops = socketDrops(r.conns)
	r.close()
}

func (r *udpReceiver) close() {
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
}

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the socket's drop
// count in what SO_MEMINFO returns (linux/sock_diag.h).
const skMeminfoDrops = 8

// socketDrops sums the datagrams each socket's kernel side dropped
// (sk_drops: the receive buffer was full, or a filter refused them), or
// returns -1 if one cannot be read.
func socketDrops(conns []*net.UDPConn) int64 {
	var total int64
	for _, c := range conns {
		rc, err := c.SyscallConn()
		if err != nil {
			return -1
		}
		var info [skMeminfoDrops + 1]uint32
		var serr error
		err = rc.Control(func(fd uintptr) {
			l := uint32(unsafe.Sizeof(info))
			if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO, uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
				serr = e
			} else if l < uint32(unsafe.Sizeof(info)) {
				serr = fmt.Errorf("SO_MEMINFO returned %d bytes", l)
			}
		})
		if err != nil || serr != nil {
			return -1
		}
		total += int64(info[skMeminfoDrops])
	}
	return total
}
