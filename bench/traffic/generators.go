package traffic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"mflow/bench/testbed"
	"mflow/internal/csum"
)

// Ports used by the generators, on the overlay addresses.
const (
	TCPPort     = 5201
	UDPPort     = 5202
	LatencyPort = 5203
)

// in runs fn inside ns and returns what it made.
func in[T any](ns *testbed.NS, fn func() (T, error)) (T, error) {
	var v T
	err := ns.Do(func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// closeOnDone closes c when ctx ends, so blocking calls return; call the
// returned stop function when done.
func closeOnDone(ctx context.Context, c io.Closer) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// PingResult is the outcome of Ping.
type PingResult struct {
	Sent, Received int
	RTT            Latency
}

// Ping sends count ICMP echo requests from namespace from to address to,
// one every interval, and waits up to timeout for each reply.
func Ping(ctx context.Context, from *testbed.NS, to netip.Addr, count int, interval, timeout time.Duration) (PingResult, error) {
	var res PingResult
	conn, err := in(from, func() (*net.IPConn, error) {
		c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return nil, err
		}
		return c.(*net.IPConn), nil
	})
	if err != nil {
		return res, fmt.Errorf("open ICMP socket in %s: %w", from.Name, err)
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()
	id := uint16(rand.Uint32())
	dst := &net.IPAddr{IP: to.AsSlice()}
	msg := make([]byte, 64)
	buf := make([]byte, 1500)
	var rtts []time.Duration
	for seq := 0; seq < count; seq++ {
		if seq > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(interval):
			}
		}
		clear(msg)
		msg[0] = 8 // echo request
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], uint16(seq))
		binary.BigEndian.PutUint16(msg[2:], csum.Checksum(msg))
		start := time.Now()
		if _, err := conn.WriteTo(msg, dst); err != nil {
			return res, fmt.Errorf("send echo request: %w", err)
		}
		res.Sent++
		deadline := start.Add(timeout)
		for {
			conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return res, fmt.Errorf("read echo reply: %w", err)
			}
			if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && binary.BigEndian.Uint16(buf[6:]) == uint16(seq) {
				res.Received++
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	res.RTT = summarise(rtts)
	return res, nil
}

// TCPResult is the outcome of TCPStream.
type TCPResult struct {
	Bytes    int64
	Duration time.Duration
	// Gbps is the goodput seen by the receiver, in Gbit/s.
	Gbps float64
	// Verified is true when the receiver got as many bytes as the sender
	// sent and every one of them equals the byte sent at its offset.
	Verified bool
}

// TCPStream sends the byte pattern of Bulk over TCP from namespace from to
// a listener on to:TCPPort in namespace server, for duration d or until
// limit bytes were sent (0: no limit), and has the receiver check every
// byte against it. It is Bulk with one stream and every read checked in
// full; a stream that arrives altered or short is not an error but
// Verified false.
func TCPStream(ctx context.Context, from, server *testbed.NS, to netip.Addr, d time.Duration, limit int64) (TCPResult, error) {
	ends, sent, err := bulk(ctx, from, server, netip.AddrPortFrom(to, TCPPort), BulkOptions{Duration: d, Limit: limit, CheckEvery: 1})
	if err != nil {
		return TCPResult{}, err
	}
	if err := ends[0].err; err != nil {
		return TCPResult{}, fmt.Errorf("receive stream: %w", err)
	}
	r := summariseBulk(ends)
	return TCPResult{Bytes: r.Bytes, Duration: r.Took, Gbps: r.Gbps(), Verified: ends[0].differs == nil && r.Bytes == sent[0]}, nil
}

// UDPOptions configures UDPStream.
type UDPOptions struct {
	// Size is the UDP payload size (at least 8, the sequence number).
	Size int
	// Duration of sending.
	Duration time.Duration
	// Rate in packets per second; 0 sends as fast as the socket allows.
	Rate int
	// Drain is how long the receiver waits for stragglers after the
	// sender stops; 0 means 300ms.
	Drain time.Duration
}

// UDPResult is the outcome of UDPStream.
type UDPResult struct {
	Sent, Received, Lost, OutOfOrder, Duplicates uint64
	Duration                                     time.Duration
	// Pps and Gbps are the receiver's packet and payload rates.
	Pps, Gbps float64
}

// UDPStream sends datagrams carrying a sequence number in their first 8
// bytes from namespace from to to:UDPPort in namespace server, and reports
// loss, reordering and duplicates as seen by the receiver.
func UDPStream(ctx context.Context, from, server *testbed.NS, to netip.Addr, o UDPOptions) (UDPResult, error) {
	var res UDPResult
	if o.Size < 8 {
		o.Size = 8
	}
	if o.Drain == 0 {
		o.Drain = 300 * time.Millisecond
	}
	rc, err := in(server, func() (*net.UDPConn, error) {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, UDPPort)))
	})
	if err != nil {
		return res, fmt.Errorf("listen in %s: %w", server.Name, err)
	}
	defer rc.Close()
	defer closeOnDone(ctx, rc)()
	rc.SetReadBuffer(8 << 20)

	var seq Seq
	var first, last time.Time
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			now := time.Now()
			mu.Lock()
			if seq.Received == 0 {
				first = now
			}
			last = now
			seq.Add(binary.BigEndian.Uint64(buf))
			mu.Unlock()
		}
	}()

	sc, err := in(from, func() (*net.UDPConn, error) {
		return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, UDPPort)))
	})
	if err != nil {
		return res, fmt.Errorf("open sender in %s: %w", from.Name, err)
	}
	defer sc.Close()
	msg := make([]byte, o.Size)
	for i := 8; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	start := time.Now()
	end := start.Add(o.Duration)
	var gap time.Duration
	if o.Rate > 0 {
		gap = time.Second / time.Duration(o.Rate)
	}
	for n := uint64(0); ; n++ {
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		if gap > 0 {
			if due := start.Add(time.Duration(n) * gap); due.After(now) {
				time.Sleep(due.Sub(now))
			}
		}
		binary.BigEndian.PutUint64(msg, n)
		if _, err := sc.Write(msg); err != nil {
			// ENOBUFS and the like: the datagram is lost at the
			// sender; count it as sent so it shows up as loss.
			res.Sent++
			continue
		}
		res.Sent++
	}
	select {
	case <-time.After(o.Drain):
	case <-ctx.Done():
	}
	rc.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	res.Received, res.OutOfOrder, res.Duplicates = seq.Received, seq.OutOfOrder, seq.Duplicates
	res.Lost = seq.Lost(res.Sent)
	res.Duration = last.Sub(first)
	if res.Duration > 0 {
		res.Pps = float64(res.Received) / res.Duration.Seconds()
		res.Gbps = res.Pps * float64(o.Size) * 8 / 1e9
	}
	return res, ctx.Err()
}

// UDPLatency measures round trips of count small UDP requests, one every
// interval, from namespace from to an echo server on to:LatencyPort in
// namespace server. Requests without a reply within timeout count as lost.
func UDPLatency(ctx context.Context, from, server *testbed.NS, to netip.Addr, count int, interval, timeout time.Duration) (Latency, int, error) {
	ec, err := in(server, func() (*net.UDPConn, error) {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, LatencyPort)))
	})
	if err != nil {
		return Latency{}, 0, fmt.Errorf("listen in %s: %w", server.Name, err)
	}
	defer ec.Close()
	defer closeOnDone(ctx, ec)()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, addr, err := ec.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			ec.WriteToUDPAddrPort(buf[:n], addr)
		}
	}()
	cc, err := in(from, func() (*net.UDPConn, error) {
		return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, LatencyPort)))
	})
	if err != nil {
		return Latency{}, 0, fmt.Errorf("open client in %s: %w", from.Name, err)
	}
	defer cc.Close()
	defer closeOnDone(ctx, cc)()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	rtts := make([]time.Duration, 0, count)
	lost := 0
	for i := 0; i < count && ctx.Err() == nil; i++ {
		binary.BigEndian.PutUint64(msg, uint64(i))
		start := time.Now()
		if _, err := cc.Write(msg); err != nil {
			lost++
			continue
		}
		cc.SetReadDeadline(start.Add(timeout))
		for {
			n, err := cc.Read(buf)
			if err != nil {
				lost++
				break
			}
			if n >= 8 && binary.BigEndian.Uint64(buf) == uint64(i) {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
		if interval > 0 {
			time.Sleep(interval)
		}
	}
	return summarise(rtts), lost, ctx.Err()
}
