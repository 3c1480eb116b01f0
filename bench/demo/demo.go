// Package demo is `mflow demo`: it builds the docs/ARCHITECTURE.md §8 testbed twice, once
// with mflow as the host's VTEP (in-process, serving the host namespace)
// and once with the kernel's own VxLAN device there, runs the same traffic
// through both (ping both ways, a TCP stream, a UDP stream with sequence
// numbers, UDP request/response for latency), and prints the results side
// by side. Everything it creates is removed when it returns, also after a
// failure or a cancelled context (Ctrl-C).
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/daemon"
	"mflow/metrics"
)

// Options configures Run. The zero value is the README's demo.
type Options struct {
	// TCP and UDP are the durations of the streams; 0 means 3s and 2s.
	TCP, UDP time.Duration
	// Policy, Workers and Batch configure mflow; zero values mean
	// microflow, 2 and 256.
	Policy  string
	Workers int
	Batch   int
	// Log receives the daemon's log; nil discards it below warnings.
	Log *slog.Logger
}

// result is one mode's measurements.
type result struct {
	mode            string
	pingOut, pingIn traffic.PingResult
	tcp             traffic.TCPResult
	udp             traffic.UDPResult
	lat             traffic.Latency
	latLost         int
	snapshot        *metrics.Snapshot // mflow only
	snapshotErr     error
}

var (
	peerOverlay = netip.AddrFrom4([4]byte(testbed.PeerOverlayIP))
	ctrOverlay  = netip.AddrFrom4([4]byte(testbed.CtrOverlayIP))
)

// Run runs the demo and writes its progress and table to w.
func Run(ctx context.Context, w io.Writer, o Options) error {
	if o.TCP == 0 {
		o.TCP = 3 * time.Second
	}
	if o.UDP == 0 {
		o.UDP = 2 * time.Second
	}
	if o.Policy == "" {
		o.Policy = "microflow"
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Batch == 0 {
		o.Batch = 256
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	start := time.Now()
	var results []result
	for _, mode := range []string{"mflow", "kernel"} {
		fmt.Fprintf(w, "[%5.1fs] %s: building the testbed\n", time.Since(start).Seconds(), mode)
		r, err := runMode(ctx, w, mode, o, start)
		if err != nil {
			return fmt.Errorf("demo with %s on the host: %w", mode, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(w, "[%5.1fs] done, testbed removed\n\n", time.Since(start).Seconds())
	writeTable(w, results, o)
	return nil
}

func runMode(ctx context.Context, w io.Writer, mode string, o Options, start time.Time) (res result, err error) {
	res.mode = mode
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mflow-demo", HostVxLAN: mode == "kernel"})
	if err != nil {
		return res, err
	}
	defer topo.Close()
	// Close the topology as soon as ctx ends, so that a Ctrl-C in the
	// middle of a stream does not wait for it.
	stop := context.AfterFunc(ctx, func() { topo.Close() })
	defer stop()

	var d *daemon.Daemon
	done := make(chan error, 1)
	if mode == "mflow" {
		var cfg *config.Config
		cfg, err = config.Parse(testbed.MflowConfig(fmt.Sprintf("policy: %s, workers: %d, batch: %d", o.Policy, o.Workers, o.Batch)))
		if err != nil {
			return res, err
		}
		d, err = daemon.New(cfg, daemon.Options{Enter: topo.Host.Do, Logger: o.Log})
		if err != nil {
			return res, err
		}
		runCtx, cancel := context.WithCancel(context.Background())
		go func() { done <- d.Run(runCtx) }()
		defer func() {
			cancel()
			if rerr := <-done; rerr != nil && err == nil {
				err = rerr
			}
		}()
	}
	step := func(what string) {
		fmt.Fprintf(w, "[%5.1fs] %s: %s\n", time.Since(start).Seconds(), mode, what)
	}
	step("ping container → peer and peer → container")
	if res.pingOut, err = traffic.Ping(ctx, topo.Ctr, peerOverlay, 5, 50*time.Millisecond, 2*time.Second); err != nil {
		return res, err
	}
	if res.pingIn, err = traffic.Ping(ctx, topo.Peer, ctrOverlay, 5, 50*time.Millisecond, 2*time.Second); err != nil {
		return res, err
	}
	step(fmt.Sprintf("TCP stream peer → container for %v", o.TCP))
	if res.tcp, err = traffic.TCPStream(ctx, topo.Peer, topo.Ctr, ctrOverlay, o.TCP, 0); err != nil {
		return res, err
	}
	step(fmt.Sprintf("UDP stream with sequence numbers peer → container for %v", o.UDP))
	if res.udp, err = traffic.UDPStream(ctx, topo.Peer, topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 1000, Duration: o.UDP}); err != nil {
		return res, err
	}
	step("UDP request/response latency")
	if res.lat, res.latLost, err = traffic.UDPLatency(ctx, topo.Peer, topo.Ctr, ctrOverlay, 300, time.Millisecond, time.Second); err != nil {
		return res, err
	}
	if d != nil {
		s := d.Snapshot()
		res.snapshot = &s
	}
	return res, nil
}

func writeTable(w io.Writer, rs []result, o Options) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"", ""}
	for _, r := range rs {
		name := "kernel VxLAN"
		if r.mode == "mflow" {
			name = fmt.Sprintf("mflow (%s, %d workers, batch %d)", o.Policy, o.Workers, o.Batch)
		}
		head = append(head, name)
	}
	row := func(group, name string, f func(r result) string) {
		cells := []string{group, name}
		for _, r := range rs {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", d.Seconds()*1e3) }
	row("ping", "container → peer", func(r result) string {
		return fmt.Sprintf("%d/%d, p50 %s", r.pingOut.Received, r.pingOut.Sent, ms(r.pingOut.RTT.P50))
	})
	row("ping", "peer → container", func(r result) string {
		return fmt.Sprintf("%d/%d, p50 %s", r.pingIn.Received, r.pingIn.Sent, ms(r.pingIn.RTT.P50))
	})
	row("TCP", "throughput", func(r result) string { return fmt.Sprintf("%.2f Gbit/s", r.tcp.Gbps) })
	row("TCP", "content verified", func(r result) string { return fmt.Sprint(r.tcp.Verified) })
	row("UDP", "sent / received", func(r result) string { return fmt.Sprintf("%d / %d", r.udp.Sent, r.udp.Received) })
	row("UDP", "delivered rate", func(r result) string {
		return fmt.Sprintf("%.0f kpps, %.2f Gbit/s", r.udp.Pps/1e3, r.udp.Gbps)
	})
	row("UDP", "loss", func(r result) string {
		if r.udp.Sent == 0 {
			return "-"
		}
		return fmt.Sprintf("%d (%.1f%%)", r.udp.Lost, 100*float64(r.udp.Lost)/float64(r.udp.Sent))
	})
	row("UDP", "out of order", func(r result) string { return fmt.Sprint(r.udp.OutOfOrder) })
	row("RTT", "p50 / p99", func(r result) string { return ms(r.lat.P50) + " / " + ms(r.lat.P99) })
	tw.Flush()
	for _, r := range rs {
		if r.snapshot == nil {
			continue
		}
		s := r.snapshot
		fmt.Fprintf(w, "\nmflow counters: decap received %d = delivered %d + dropped %d + in flight %d; encap received %d = sent %d + dropped %d + in flight %d; XDP mode %s\n",
			s.Decap.Received.Packets, s.Decap.Delivered.Packets, s.Dropped(metrics.Decap), s.Decap.InFlight,
			s.Encap.Received.Packets, s.Encap.Delivered.Packets, s.Dropped(metrics.Encap), s.Encap.InFlight, s.XDPMode)
		if err := s.Check(); err != nil {
			fmt.Fprintf(w, "conservation check FAILED: %v\n", err)
		}
		for _, x := range s.XSK {
			fmt.Fprintf(w, "AF_XDP socket of queue %d, dropped by the kernel before mflow saw them: %d (rx ring full %d, fill ring empty %d)\n",
				x.Queue, x.RxDropped, x.RxRingFull, x.FillRingEmpty)
		}
		for _, d := range s.Drops {
			if d.Packets > 0 {
				fmt.Fprintf(w, "  dropped (%s, %s): %d\n", d.Direction, d.Reason, d.Packets)
			}
		}
	}
	fmt.Fprintln(w, "\nUDP loss is counted at the receiving socket in the container. The sender is not paced, so loss shows where")
	fmt.Fprintln(w, "the receiving path saturates on this machine: in mflow's own drops or the AF_XDP socket's (above), or")
	fmt.Fprintln(w, "after mflow in the kernel (TAP queue, bridge, the receiving socket's buffer).")
}
