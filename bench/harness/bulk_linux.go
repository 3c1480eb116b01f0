package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
)

// The built-in TCP client of the TCP steps, made so that the sender and
// the receiver are not what limits the measured goodput:
//
//   - the sender writes the byte pattern on a blocking socket, size bytes
//     per write(2) straight from the pattern's memory (no per-write
//     preparation; one copy, into the socket, as iperf3 does);
//   - the receiver reads 128 KiB at a time on a blocking socket and
//     checks the stream against the pattern by sampling: the first and
//     last 64 bytes of every read (a chunk delivered at a wrong offset or
//     truncated fails there) and every checkEvery-th read in full. The
//     byte count is exact: a step whose receiver got a different number of
//     bytes than the sender sent fails. Every byte is still covered by
//     TCP's checksum; the sample is our own, end-to-end check of what the
//     overlay delivered.
//
// Both run on locked OS threads. Goodput is bytes received ÷ the time from
// the first received byte to the end of the last stream.
//
// sendfile(2) from a memfd holding the pattern was tried as the sender
// (zero-copy): on the kernel testbed of a 2-core machine it read 0.77-0.80
// of iperf3 in both directions, the copying write 0.96 and 1.08 (medians
// of 3, 2 s each); see BENCHMARKS.md.

// readSize is the receiver's read buffer.
const readSize = 128 << 10

// maxWrite is the largest write size of a TCP step (the pattern's span).
const maxWrite = 16 << 20

// checkEvery is the stride of the reads checked in full.
const checkEvery = 8

// edgeCheck is how many bytes at each end of every read are checked.
const edgeCheck = 64

var (
	patOnce sync.Once
	patMem  pattern
)

// streamPattern returns the pattern with a span of maxWrite, made once per
// process.
func streamPattern() pattern {
	patOnce.Do(func() { patMem = newPattern(maxWrite) })
	return patMem
}

// bulkResult is the outcome of a bulk transfer.
type bulkResult struct {
	Bytes   int64         // received, all streams
	Took    time.Duration // first received byte to the end of the last stream
	Streams int
}

// Gbps returns the goodput.
func (r bulkResult) Gbps() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Took.Seconds() / 1e9
}

// tcpBulk streams the pattern from namespace from to addr in namespace to
// over streams parallel connections for d, each write of size bytes, and
// checks what arrives. ctx ends it early (with an error).
func tcpBulk(ctx context.Context, from, to *testbed.NS, addr netip.AddrPort, streams, size int, d time.Duration) (bulkResult, error) {
	pat := streamPattern()
	ln, err := listenTCP(to, addr, 5*time.Second)
	if err != nil {
		return bulkResult{}, fmt.Errorf("listening: %w", err)
	}
	defer ln.close()
	var senders, receivers []rawSock
	defer func() {
		for _, s := range append(senders, receivers...) {
			s.close()
		}
	}()
	for range streams {
		s, err := dialTCP(from, addr, false, 5*time.Second)
		if err != nil {
			return bulkResult{}, err
		}
		senders = append(senders, s)
		c, err := ln.accept(false)
		if err != nil {
			return bulkResult{}, err
		}
		receivers = append(receivers, c)
	}
	// A cancelled step shuts the sockets down, which ends the loops.
	stop := context.AfterFunc(ctx, func() {
		for _, s := range append(senders, receivers...) {
			unix.Shutdown(int(s), unix.SHUT_RDWR)
		}
	})
	defer stop()
	got := make(chan []streamEnd, 1)
	go func() { got <- receiveStreams(receivers, pat) }()
	sent, serr := sendStreams(senders, pat, size, time.Now().Add(d))
	for _, s := range senders {
		unix.Shutdown(int(s), unix.SHUT_WR)
	}
	var ends []streamEnd
	select {
	case ends = <-got:
	case <-time.After(10 * time.Second):
		for _, c := range receivers {
			unix.Shutdown(int(c), unix.SHUT_RDWR)
		}
		<-got
		return bulkResult{}, errors.New("receiving: the streams did not end within 10 s of the sender's end")
	}
	if serr != nil {
		return bulkResult{}, fmt.Errorf("sending: %w", serr)
	}
	if ctx.Err() != nil {
		return bulkResult{}, ctx.Err()
	}
	res := bulkResult{Streams: streams}
	var first, last time.Time
	var rerr error
	for i, e := range ends {
		if e.err != nil {
			rerr = errors.Join(rerr, fmt.Errorf("stream %d: %w", i, e.err))
		}
		if e.n != sent[i] {
			rerr = errors.Join(rerr, fmt.Errorf("stream %d: got %d of %d bytes", i, e.n, sent[i]))
		}
		res.Bytes += e.n
		if !e.first.IsZero() && (first.IsZero() || e.first.Before(first)) {
			first = e.first
		}
		if e.end.After(last) {
			last = e.end
		}
	}
	if rerr != nil {
		return res, fmt.Errorf("receiving: %w", rerr)
	}
	if !first.IsZero() {
		res.Took = last.Sub(first)
	}
	return res, nil
}

// sendStreams writes the pattern on every socket until end, from one
// thread that polls them for room (as iperf3 does), and returns the bytes
// sent on each.
func sendStreams(socks []rawSock, pat pattern, size int, end time.Time) ([]int64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sent := make([]int64, len(socks))
	pfds := make([]unix.PollFd, len(socks))
	for i, s := range socks {
		if err := unix.SetNonblock(int(s), true); err != nil {
			return sent, err
		}
		pfds[i] = unix.PollFd{Fd: int32(s), Events: unix.POLLOUT}
	}
	for time.Now().Before(end) {
		n, err := unix.Poll(pfds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return sent, fmt.Errorf("poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		for i := range pfds {
			if pfds[i].Revents == 0 {
				continue
			}
			k, err := unix.Write(int(socks[i]), pat.at(sent[i], size))
			if k > 0 {
				sent[i] += int64(k)
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				return sent, fmt.Errorf("stream %d: %w", i, err)
			}
		}
	}
	return sent, nil
}

// streamEnd is what the receiver of one stream saw.
type streamEnd struct {
	n          int64     // bytes received
	first, end time.Time // first byte, end of stream
	err        error
}

// receiveStreams reads every socket to its end from one thread that polls
// them, checking the content (see the note at the top of this file); it
// closes nothing. A stream on which nothing arrives for 5 s ends with an
// error.
func receiveStreams(socks []rawSock, pat pattern) []streamEnd {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ends := make([]streamEnd, len(socks))
	checks := make([]*streamCheck, len(socks))
	pfds := make([]unix.PollFd, len(socks))
	for i, s := range socks {
		checks[i] = newStreamCheck(pat)
		checks[i].every = checkEvery
		pfds[i] = unix.PollFd{Fd: int32(s), Events: unix.POLLIN}
		if err := unix.SetNonblock(int(s), true); err != nil {
			ends[i].err = err
			pfds[i].Fd = -1
		}
	}
	finish := func(i int, err error) {
		ends[i].n, ends[i].end, ends[i].err = checks[i].n, time.Now(), err
		if err == nil {
			ends[i].err = checks[i].err()
		}
		pfds[i].Fd = -1
	}
	buf := make([]byte, readSize)
	for {
		open := 0
		for i := range pfds {
			if pfds[i].Fd >= 0 {
				open++
			}
		}
		if open == 0 {
			return ends
		}
		n, err := unix.Poll(pfds, 5000)
		if err != nil && !errors.Is(err, unix.EINTR) {
			for i := range pfds {
				if pfds[i].Fd >= 0 {
					finish(i, fmt.Errorf("poll: %w", err))
				}
			}
			return ends
		}
		if n == 0 {
			for i := range pfds {
				if pfds[i].Fd >= 0 {
					finish(i, errors.New("receive timed out: nothing arrived for 5 s"))
				}
			}
			return ends
		}
		for i := range pfds {
			if pfds[i].Fd < 0 || pfds[i].Revents == 0 {
				continue
			}
			k, err := unix.Read(int(socks[i]), buf)
			switch {
			case k > 0:
				if checks[i].n == 0 {
					ends[i].first = time.Now()
				}
				checks[i].add(buf[:k])
			case k == 0 && err == nil:
				finish(i, nil)
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			default:
				finish(i, err)
			}
		}
	}
}
