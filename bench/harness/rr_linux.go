package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
)

// Request/response like netperf's TCP_RR and UDP_RR: one connection (one
// UDP socket pair), the client sends a request of size bytes, the server
// answers with size bytes, and only then does the client send the next;
// each transaction's round trip is timed from the request's send call to
// the response's last byte with CLOCK_MONOTONIC. Both ends use blocking
// sockets on locked OS threads (TCP with TCP_NODELAY), so a transaction
// costs the path's latency plus two syscalls per side, as with netperf.
//
// UDP requests carry a sequence number (its low byte for 1-byte requests)
// that the server echoes; a request without its response within
// rrUDPTimeout counts as lost and the client goes on, discarding late
// responses by their number.

// rrUDPTimeout bounds the wait for one UDP response.
const rrUDPTimeout = 100 * time.Millisecond

// maxRRSamples bounds the round trips kept (the count is exact beyond it).
const maxRRSamples = 1 << 22

// rr runs proto ("tcp" or "udp") request/response from client to a server
// on addr in namespace server for d.
func rr(ctx context.Context, proto string, client, server *testbed.NS, addr netip.AddrPort, size int, d time.Duration) (rrResult, error) {
	if proto == "udp" {
		return udpRR(ctx, client, server, addr, size, d)
	}
	return tcpRR(ctx, client, server, addr, size, d)
}

func tcpRR(ctx context.Context, client, server *testbed.NS, addr netip.AddrPort, size int, d time.Duration) (rrResult, error) {
	ln, err := traffic.ListenTCP(server, addr, 5*time.Second)
	if err != nil {
		return rrResult{}, fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	srvDone := make(chan error, 1)
	srvConn := make(chan traffic.Sock, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := ln.Accept(true)
		if err != nil {
			srvConn <- -1
			srvDone <- err
			return
		}
		srvConn <- c
		buf := make([]byte, size)
		for {
			if err := c.ReadFull(buf); err != nil {
				srvDone <- nil // the client closed (or the step ended)
				return
			}
			if err := c.WriteFull(buf); err != nil {
				srvDone <- fmt.Errorf("server: %w", err)
				return
			}
		}
	}()
	c, err := traffic.DialTCP(client, addr, true, 5*time.Second)
	if err != nil {
		return rrResult{}, err
	}
	defer c.Close()
	sc := <-srvConn
	if sc >= 0 {
		defer sc.Close()
	}
	stop := context.AfterFunc(ctx, func() { unix.Shutdown(int(c), unix.SHUT_RDWR) })
	defer stop()

	req := make([]byte, size)
	resp := make([]byte, size)
	res := rrResult{RTTs: make([]float64, 0, 1<<16)}
	runtime.LockOSThread()
	start := monoNow()
	end := start + d.Nanoseconds()
	var cerr error
	for {
		t0 := monoNow()
		if t0 >= end {
			break
		}
		if err := c.WriteFull(req); err != nil {
			cerr = fmt.Errorf("client send: %w", err)
			break
		}
		if err := c.ReadFull(resp); err != nil {
			cerr = fmt.Errorf("client receive: %w", err)
			break
		}
		res.Transactions++
		if len(res.RTTs) < maxRRSamples {
			res.RTTs = append(res.RTTs, float64(monoNow()-t0)/1e3)
		}
	}
	res.Seconds = float64(monoNow()-start) / 1e9
	runtime.UnlockOSThread()
	unix.Shutdown(int(c), unix.SHUT_WR)
	var serr error
	if sc >= 0 {
		select {
		case serr = <-srvDone:
		case <-time.After(2 * time.Second):
			unix.Shutdown(int(sc), unix.SHUT_RDWR)
			serr = <-srvDone
		}
	} else {
		serr = <-srvDone
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err := errors.Join(cerr, serr); err != nil {
		if errors.Is(err, unix.EAGAIN) {
			err = fmt.Errorf("%w (no response within 5 s)", err)
		}
		return res, err
	}
	return res, nil
}

func udpRR(ctx context.Context, client, server *testbed.NS, addr netip.AddrPort, size int, d time.Duration) (rrResult, error) {
	srv, err := traffic.OpenSock(server, unix.SOCK_DGRAM, addr, 200*time.Millisecond)
	if err != nil {
		return rrResult{}, fmt.Errorf("server: %w", err)
	}
	defer srv.Close()
	quit := make(chan struct{})
	srvDone := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 2048)
		for {
			n, from, err := unix.Recvfrom(int(srv), buf, 0)
			select {
			case <-quit:
				srvDone <- nil
				return
			default:
			}
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				srvDone <- fmt.Errorf("server: %w", err)
				return
			}
			unix.Sendto(int(srv), buf[:n], 0, from)
		}
	}()
	defer func() {
		close(quit)
		<-srvDone
	}()
	c, err := traffic.OpenSock(client, unix.SOCK_DGRAM, netip.AddrPort{}, rrUDPTimeout)
	if err != nil {
		return rrResult{}, fmt.Errorf("client: %w", err)
	}
	defer c.Close()
	if err := c.Connect(addr); err != nil {
		return rrResult{}, fmt.Errorf("client: connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { unix.Shutdown(int(c), unix.SHUT_RDWR) })
	defer stop()

	req := make([]byte, size)
	resp := make([]byte, 2048)
	res := rrResult{RTTs: make([]float64, 0, 1<<16)}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := monoNow()
	end := start + d.Nanoseconds()
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		t0 := monoNow()
		if t0 >= end {
			break
		}
		putSeq(req, seq)
		if _, err := unix.Write(int(c), req); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ECONNREFUSED) { // an ICMP error of an earlier datagram
				res.Lost++
				continue
			}
			return res, fmt.Errorf("client send: %w", err)
		}
		for {
			n, err := unix.Read(int(c), resp)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ECONNREFUSED) && ctx.Err() == nil {
					return res, fmt.Errorf("client receive: %w", err)
				}
				res.Lost++ // timed out
				break
			}
			if n == 0 && ctx.Err() != nil {
				// The step was cancelled: the socket is shut down and
				// every read returns at once with nothing.
				res.Seconds = float64(monoNow()-start) / 1e9
				return res, ctx.Err()
			}
			if n == size && seqMatches(resp[:n], seq) {
				res.Transactions++
				if len(res.RTTs) < maxRRSamples {
					res.RTTs = append(res.RTTs, float64(monoNow()-t0)/1e3)
				}
				break
			}
			// A late response to an earlier request: wait on (the
			// socket's timeout restarts, a bounded overshoot).
		}
	}
	res.Seconds = float64(monoNow()-start) / 1e9
	return res, ctx.Err()
}
