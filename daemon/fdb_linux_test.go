package daemon

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"mflow/batch"
	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/metrics"
	"mflow/vxlan"
)

// TestNetworkStageLearnLimits: frames from new inner source MACs beyond
// fdb.max_learned, or beyond a peer's fdb.learn_rate, are delivered but
// not learned, and the refusals are counted; a full table costs no
// allocation per frame.
func TestNetworkStageLearnLimits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		limit, rate int
		full, rated uint64
	}{
		{"max_learned", 4, 0, 12, 0},
		{"learn_rate", 0, 3, 0, 13},
		{"both", 5, 3, 0, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := testDaemon()
			d.fdb.SetLimits(tc.limit, tc.rate)
			const n = 16
			b := batch.NewBatch(n)
			for i := range n {
				b.Frames[i], _ = vxlanFrame(t, testPeer, 42, net.HardwareAddr{2, 0xb, 0, 0, 1, byte(i)}, byte(i))
			}
			b.N = n
			b.Begin()
			d.stage.Process(b)
			for i := range n {
				if b.Reason[i] != vxlan.Deliver {
					t.Fatalf("frame %d: %v, want delivered", i, b.Reason[i])
				}
			}
			learned := uint64(d.fdb.Learned(42))
			if full, rated := d.stage.learnFull.Load(), d.stage.learnRated.Load(); full != tc.full || rated != tc.rated || learned+full+rated != n {
				t.Fatalf("%d learned, %d refused as table full, %d as rate limited; want %d, %d of %d", learned, full, rated, tc.full, tc.rated, n)
			}
			if a := testing.AllocsPerRun(100, func() {
				b.Begin()
				d.stage.Process(b)
			}); a != 0 {
				t.Errorf("Process with learning refused: %v allocs per batch", a)
			}
		})
	}
}

// TestE2EMACFlood: an allowed peer floods frames from ever new inner
// source MACs at 20000 frames/s while the peer pings the container. The
// FDB stays bounded by fdb.max_learned, learning is refused (counted)
// beyond the limits, the flood's frames are all accounted for, and the
// pings get through.
func TestE2EMACFlood(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Warm up ARP both ways before the flood.
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != 2 {
		t.Fatalf("ping before the flood: %+v, %v", p, err)
	}
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: r.topo.PeerWireMAC, DstMAC: r.topo.HostUplinkMAC,
		SrcIP: netip.MustParseAddr(testbed.PeerUnderlayIP.String()), DstIP: netip.MustParseAddr(testbed.HostUnderlayIP.String()), SrcPort: 50000,
		VNI: testbed.VNI, Size: 128,
		Inner: &gen.FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8},
			SrcIP: peerOverlay, DstIP: netip.MustParseAddr("10.42.0.99"), SrcPort: 1000, DstPort: 2000,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The sequence number, written over bytes 4..11 of the inner Ethernet
	// header, makes every frame's inner source MAC new (00:00:<seq>, a
	// unicast address; sequence number 0 is the all-zero MAC, dropped as
	// bad_inner_source_mac).
	in := vxlan.InnerOffset(f.Data)
	const count, rate = 100000, 20000
	type genResult struct {
		st  gen.Stats
		err error
	}
	flood := make(chan genResult, 1)
	go func() {
		st, err := gen.Run(ctx, r.topo.Peer, testbed.PeerWire, f.Data, gen.Options{Count: count, Rate: rate, SeqOffset: in + 4})
		flood <- genResult{st, err}
	}()
	p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 150, 25*time.Millisecond, 2*time.Second)
	g := <-flood
	if g.err != nil || g.st.Sent != count {
		t.Fatalf("flood: %+v, %v", g.st, g.err)
	}
	t.Logf("during the flood: ping %d/%d, p99 %v; flood sent %d in %v", p.Received, p.Sent, p.RTT.P99, g.st.Sent, g.st.Duration)
	if err != nil || p.Received < p.Sent*95/100 {
		t.Errorf("ping peer → container during the flood: %+v, %v; want at least 95%% answered", p, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var s metrics.Snapshot
	for time.Now().Before(deadline) {
		s = r.d.Snapshot()
		if s.Decap.Received.Packets >= count && s.Decap.InFlight == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("decap %+v, fdb %+v", s.Decap, s.FDB)
	if s.Decap.Received.Packets < count {
		t.Errorf("received %d of the flood's %d frames", s.Decap.Received.Packets, count)
	}
	if s.FDB.Entries > config.DefaultFDBMaxLearned+8 {
		t.Errorf("FDB holds %d entries, want at most fdb.max_learned (%d) and the few real stations", s.FDB.Entries, config.DefaultFDBMaxLearned)
	}
	if s.FDB.TableFull+s.FDB.RateLimited+s.FDB.Entries < count-1 {
		t.Errorf("%d refused + %d entries for %d new source MACs", s.FDB.TableFull+s.FDB.RateLimited, s.FDB.Entries, count-1)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// macFlood sends count VxLAN frames from ever new inner source MACs from
// the peer to the host at rate per second while the peer pings the
// container every 10 ms; it returns the ping outcome.
func macFlood(t *testing.T, ctx context.Context, topo *testbed.Topology, count, rate int) traffic.PingResult {
	t.Helper()
	if p, err := traffic.Ping(ctx, topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != 2 {
		t.Fatalf("ping before the flood: %+v, %v", p, err)
	}
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: topo.PeerWireMAC, DstMAC: topo.HostUplinkMAC,
		SrcIP: netip.MustParseAddr(testbed.PeerUnderlayIP.String()), DstIP: netip.MustParseAddr(testbed.HostUnderlayIP.String()), SrcPort: 50000,
		VNI: testbed.VNI, Size: 128,
		Inner: &gen.FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8},
			SrcIP: peerOverlay, DstIP: netip.MustParseAddr("10.42.0.99"), SrcPort: 1000, DstPort: 2000,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := vxlan.InnerOffset(f.Data)
	type genResult struct {
		st  gen.Stats
		err error
	}
	flood := make(chan genResult, 1)
	go func() {
		st, err := gen.Run(ctx, topo.Peer, testbed.PeerWire, f.Data, gen.Options{Count: uint64(count), Rate: float64(rate), SeqOffset: in + 4})
		flood <- genResult{st, err}
	}()
	pings := count / rate * 100 // every 10 ms for the flood's duration
	p, perr := traffic.Ping(ctx, topo.Peer, ctrOverlay, pings, 10*time.Millisecond, 2*time.Second)
	g := <-flood
	if g.err != nil || g.st.Sent != uint64(count) {
		t.Fatalf("flood: %+v, %v", g.st, g.err)
	}
	if perr != nil {
		t.Fatalf("ping: %v", perr)
	}
	return p
}

// TestMACFloodAgainstKernel: 1 M frames from random (ever new) inner
// source MACs at 100 000 frames/s from an allowed peer, while the peer
// pings the container, once through mflow and once through the kernel's
// VxLAN on a testbed of its own: mflow must answer at least as large a
// share of the pings as the kernel, less 2 %. Both outcomes are logged
// (BENCHMARKS.md quotes them).
func TestMACFloodAgainstKernel(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a 2 × 10 s flood; not under -short or the race detector")
	}
	const count, rate = 1_000_000, 100_000
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	pm := macFlood(t, ctx, r.topo, count, rate)
	s := r.d.Snapshot()
	if err := r.shutdown(t); err != nil {
		t.Fatal(err)
	}
	t.Logf("mflow: ping %d/%d answered, RTT p50 %v p99 %v; FDB %+v", pm.Received, pm.Sent, pm.RTT.P50, pm.RTT.P99, s.FDB)

	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mft", HostVxLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	pk := macFlood(t, ctx, topo, count, rate)
	t.Logf("kernel: ping %d/%d answered, RTT p50 %v p99 %v", pk.Received, pk.Sent, pk.RTT.P50, pk.RTT.P99)
	if pm.Received*100 < pk.Received*98 {
		t.Errorf("mflow answered %d of %d pings during the flood, the kernel %d of %d", pm.Received, pm.Sent, pk.Received, pk.Sent)
	}
}
