package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
)

// bulk runs the transfer of Bulk and returns what the receiver of each
// stream saw and how many bytes its sender sent, or an error that ended
// the transfer as a whole (setting up, sending, a receiver that did not
// end, ctx).
func bulk(ctx context.Context, from, to *testbed.NS, addr netip.AddrPort, o BulkOptions) ([]streamEnd, []int64, error) {
	streams, size := max(o.Streams, 1), o.Size
	if size <= 0 {
		size = readSize
	}
	if size > MaxWrite {
		return nil, nil, fmt.Errorf("write size %d above %d", size, MaxWrite)
	}
	pat := streamPattern()
	ln, err := ListenTCP(to, addr, 5*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	var senders, receivers []Sock
	defer func() {
		for _, s := range append(senders, receivers...) {
			s.Close()
		}
	}()
	for range streams {
		s, err := DialTCP(from, addr, false, 5*time.Second)
		if err != nil {
			return nil, nil, err
		}
		senders = append(senders, s)
		c, err := ln.Accept(false)
		if err != nil {
			return nil, nil, err
		}
		receivers = append(receivers, c)
	}
	// A cancelled transfer shuts the sockets down, which ends the loops.
	stop := context.AfterFunc(ctx, func() {
		for _, s := range append(senders, receivers...) {
			unix.Shutdown(int(s), unix.SHUT_RDWR)
		}
	})
	defer stop()
	got := make(chan []streamEnd, 1)
	go func() { got <- receiveStreams(receivers, pat, o.CheckEvery) }()
	sent, serr := sendStreams(senders, pat, size, o.Limit, time.Now().Add(o.Duration))
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
		return nil, nil, errors.New("receiving: the streams did not end within 10 s of the sender's end")
	}
	if ctx.Err() != nil { // a cancelled step: its broken pipes say nothing more
		return nil, nil, ctx.Err()
	}
	if serr != nil {
		return nil, nil, fmt.Errorf("sending: %w", serr)
	}
	return ends, sent, nil
}

// sendStreams writes the pattern on every socket until end, or until it
// has sent limit bytes on each when limit is above 0, from one thread that
// polls them for room (as iperf3 does), and returns the bytes sent on
// each.
func sendStreams(socks []Sock, pat pattern, size int, limit int64, end time.Time) ([]int64, error) {
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
	for active := len(socks); active > 0 && time.Now().Before(end); {
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
			w := size
			if limit > 0 {
				w = int(min(int64(size), limit-sent[i]))
			}
			k, err := unix.Write(int(socks[i]), pat.at(sent[i], w))
			if k > 0 {
				sent[i] += int64(k)
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				return sent, fmt.Errorf("stream %d: %w", i, err)
			}
			if limit > 0 && sent[i] >= limit {
				pfds[i].Fd = -1 // poll(2) ignores it from now on
				active--
			}
		}
	}
	return sent, nil
}

// receiveStreams reads every socket to its end from one thread that polls
// them, checking the content against pat (every every-th read in full, see
// Bulk); it closes nothing. When nothing arrives on any open stream for
// 5 s, every open stream ends with an error.
func receiveStreams(socks []Sock, pat pattern, every int) []streamEnd {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ends := make([]streamEnd, len(socks))
	checks := make([]*streamCheck, len(socks))
	pfds := make([]unix.PollFd, len(socks))
	for i, s := range socks {
		checks[i] = newStreamCheck(pat)
		checks[i].every = int64(every)
		pfds[i] = unix.PollFd{Fd: int32(s), Events: unix.POLLIN}
		if err := unix.SetNonblock(int(s), true); err != nil {
			ends[i].err = err
			pfds[i].Fd = -1
		}
	}
	finish := func(i int, err error) {
		ends[i].n, ends[i].end, ends[i].err = checks[i].n, time.Now(), err
		ends[i].differs = checks[i].err()
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
