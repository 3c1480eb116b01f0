package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/metrics"
)

// testConfig is the daemon's configuration for the docs/ARCHITECTURE.md §8 testbed.
func testConfig(t testing.TB, policy string, workers, batch int) *config.Config {
	t.Helper()
	cfg, err := config.Parse(testbed.MflowConfig(fmt.Sprintf("policy: %s, workers: %d, batch: %d", policy, workers, batch)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// running is a daemon serving the host namespace of a testbed.
type running struct {
	topo     *testbed.Topology
	baseline int // goroutines before the daemon started
	d        *Daemon
	stop     context.CancelFunc
	done     chan error
}

func startDaemon(t *testing.T, cfg *config.Config) *running { return startDaemonWith(t, cfg, nil) }

// startDaemonWith is startDaemon with prepare, when not nil, run on the
// testbed before the daemon starts.
func startDaemonWith(t *testing.T, cfg *config.Config, prepare func(*testbed.Topology) error) *running {
	t.Helper()
	return startDaemonOn(t, cfg, testbed.Options{Prefix: "mft"}, prepare)
}

// startDaemonOn is startDaemonWith on a testbed built with o.
func startDaemonOn(t *testing.T, cfg *config.Config, o testbed.Options, prepare func(*testbed.Topology) error) *running {
	t.Helper()
	return startDaemonOpts(t, cfg, o, Options{}, prepare)
}

// startDaemonOpts is startDaemonOn with the daemon's Options (Enter and
// Logger are set here).
func startDaemonOpts(t *testing.T, cfg *config.Config, o testbed.Options, do Options, prepare func(*testbed.Topology) error) *running {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o.Prefix == "" {
		o.Prefix = "mft"
	}
	topo, err := testbed.Build(ctx, o)
	if err != nil {
		t.Fatalf("build testbed: %v", err)
	}
	t.Cleanup(func() { topo.Close() })
	if prepare != nil {
		if err := prepare(topo); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	baseline := runtime.NumGoroutine()
	do.Enter, do.Logger = topo.Host.Do, log
	d, err := New(cfg, do)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	r := &running{topo: topo, baseline: baseline, d: d, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- d.Run(runCtx) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// shutdown stops the daemon and returns Run's error; it is idempotent.
func (r *running) shutdown(t *testing.T) error {
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			return err
		}
		return nil
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20s")
	}
	return nil
}

var (
	peerOverlay = netip.MustParseAddr("10.42.0.1")
	ctrOverlay  = netip.MustParseAddr("10.42.0.2")
)

func TestE2EPing(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 5, 20*time.Millisecond, 2*time.Second)
	if err != nil || p.Received != p.Sent {
		t.Fatalf("ping container → peer: %+v, %v", p, err)
	}
	p, err = traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 5, 20*time.Millisecond, 2*time.Second)
	if err != nil || p.Received != p.Sent {
		t.Fatalf("ping peer → container: %+v, %v", p, err)
	}
	// The TAP's queue to mflow has the configured default length, not
	// the kernel's 1000 (networks[].device.queue_len).
	if l, err := r.topo.Host.Link(testbed.MflowVeth); err != nil {
		t.Error(err)
	} else if q := l.Attrs().TxQLen; q != config.DefaultDeviceQueueLen {
		t.Errorf("TAP %s: txqueuelen %d, want %d", testbed.MflowVeth, q, config.DefaultDeviceQueueLen)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := r.d.Snapshot()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("decap %+v encap %+v", s.Decap, s.Encap)
	// No goroutine of the daemon survives Run.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > r.baseline && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > r.baseline {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Run, %d before New:\n%s", n, r.baseline, buf[:runtime.Stack(buf, true)])
	}
}

// TestE2ETCP streams 50 MB each way, content verified, on every encap
// transmit path.
func TestE2ETCP(t *testing.T) {
	for _, tx := range []config.Transmit{config.TransmitSocket, config.TransmitAFXDP, config.TransmitTunnel} {
		t.Run(string(tx), func(t *testing.T) {
			cfg := testConfig(t, "microflow", 2, 256)
			cfg.VTEP.Transmit = tx
			testTCP(t, cfg)
		})
	}
}

func testTCP(t *testing.T, cfg *config.Config) {
	r := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const size = 50 << 20
	res, err := traffic.TCPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, time.Minute, size)
	if err != nil || !res.Verified || res.Bytes != size {
		t.Fatalf("TCP peer → container: %+v, %v", res, err)
	}
	t.Logf("peer → container: %d bytes in %v, %.2f Gbit/s, content verified", res.Bytes, res.Duration, res.Gbps)
	res, err = traffic.TCPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, time.Minute, size)
	if err != nil || !res.Verified || res.Bytes != size {
		t.Fatalf("TCP container → peer: %+v, %v", res, err)
	}
	t.Logf("container → peer: %d bytes in %v, %.2f Gbit/s, content verified", res.Bytes, res.Duration, res.Gbps)
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := r.d.Snapshot()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("decap %+v encap %+v", s.Decap, s.Encap)
}

// TestE2ETunnelUDP: on the tunnel transmit path, a UDP stream container →
// peer arrives in order and without duplicates at the kernel's VxLAN,
// pings (ARP flooded through the transmit TAP first) are answered both
// ways, every frame read from the TAP is accounted for, and the stream
// (faster than one loop keeps up with, so reads find several datagrams)
// went into the transmit TAP as merged runs: fewer packets than frames.
func TestE2ETunnelUDP(t *testing.T) {
	cfg := testConfig(t, "single", 1, 64)
	cfg.VTEP.Transmit = config.TransmitTunnel
	r := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, ns := range []struct {
		from *testbed.NS
		to   netip.Addr
	}{{r.topo.Ctr, peerOverlay}, {r.topo.Peer, ctrOverlay}} {
		if p, err := traffic.Ping(ctx, ns.from, ns.to, 5, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
			t.Fatalf("ping %v: %+v, %v", ns.to, p, err)
		}
	}
	res, err := traffic.UDPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, traffic.UDPOptions{Size: 1000, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("UDP container → peer: %+v", res)
	if res.Received == 0 || res.OutOfOrder != 0 || res.Duplicates != 0 {
		t.Fatalf("UDP stream through the tunnel path: %+v; want no reordering", res)
	}
	writes := txTAPPackets(t, r) // before the shutdown closes it
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := r.d.Snapshot()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if s.Encap.Delivered.Packets < res.Received {
		t.Fatalf("encap transmitted %d frames, the peer received %d datagrams", s.Encap.Delivered.Packets, res.Received)
	}
	if writes == 0 || writes >= s.Encap.Delivered.Packets {
		t.Fatalf("%d packets into the transmit TAP for %d frames: no run of datagrams was merged", writes, s.Encap.Delivered.Packets)
	}
	t.Logf("encap %+v in %d transmit TAP packets", s.Encap, writes)
}

func TestE2EUDPOrder(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The container's veth must not reorder after mflow: with GRO on it
	// receives through NAPI (one ring); without, each frame goes to the
	// backlog of the CPU the TAP writer happens to run on, and a writer
	// thread that migrates sees the kernel reorder its frames.
	if err := r.topo.Ctr.SetOffloads(testbed.CtrDev, testbed.Offloads{TSO: true, GSO: true, GRO: true, TxCsum: true}); err != nil {
		t.Fatal(err)
	}
	udpDecapInOrder(ctx, t, r, "microflow with 2 workers")
	s := r.d.Snapshot()
	if s.MicroflowsDispatched < 2 || len(s.Workers) != 2 || s.Workers[0] == 0 || s.Workers[1] == 0 {
		t.Fatalf("both workers must have carried the stream: %+v, %d micro-flows", s.Workers, s.MicroflowsDispatched)
	}
}

// dropOf returns the drop counter of one direction and reason.
func dropOf(s metrics.Snapshot, dir, reason string) uint64 {
	for _, d := range s.Drops {
		if d.Direction == dir && d.Reason == reason {
			return d.Packets
		}
	}
	return 0
}

// TestE2EPolicyDrops sends VxLAN frames for an unknown VNI and from a VTEP
// that is not a peer: both are dropped and counted under their reasons.
func TestE2EPolicyDrops(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 32))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner := &gen.FrameSpec{
		SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8},
		SrcIP: peerOverlay, DstIP: ctrOverlay, SrcPort: 1000, DstPort: 2000,
	}
	send := func(src netip.Addr, vni uint32, n uint64) {
		t.Helper()
		f, err := gen.BuildFrame(gen.FrameSpec{
			SrcMAC: r.topo.PeerWireMAC, DstMAC: r.topo.HostUplinkMAC,
			SrcIP: src, DstIP: netip.MustParseAddr("192.0.2.1"), SrcPort: 50000,
			VNI: vni, Inner: inner, Size: 128,
		})
		if err != nil {
			t.Fatal(err)
		}
		st, err := gen.Run(ctx, r.topo.Peer, testbed.PeerWire, f.Data, gen.Options{Count: n})
		if err != nil || st.Sent != n {
			t.Fatalf("generator: %+v, %v", st, err)
		}
	}
	send(netip.MustParseAddr("192.0.2.2"), 99, 100)
	send(netip.MustParseAddr("192.0.2.9"), testbed.VNI, 70)
	// The counters settle once the frames went through the pipeline.
	deadline := time.Now().Add(5 * time.Second)
	var s metrics.Snapshot
	for time.Now().Before(deadline) {
		s = r.d.Snapshot()
		if s.Decap.Received.Packets >= 170 && s.Decap.InFlight == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := dropOf(s, metrics.Decap, "unknown_vni"); got != 100 {
		t.Errorf("unknown_vni drops = %d, want 100", got)
	}
	if got := dropOf(s, metrics.Decap, "peer_not_allowed"); got != 70 {
		t.Errorf("peer_not_allowed drops = %d, want 70", got)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestE2EARPFlooding checks that the first ARP request of the container,
// with an empty FDB, reaches the peer by flooding, and that the answer
// teaches the FDB where the peer's MAC lives.
func TestE2EARPFlooding(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	if n := r.d.d.fdb.Len(); n != 0 {
		t.Fatalf("FDB starts with %d entries", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 1, 0, 3*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v %v", p, err)
	}
	peerMAC, err := r.topo.Peer.HWAddr(testbed.VxLANDev)
	if err != nil {
		t.Fatal(err)
	}
	var learned net.HardwareAddr
	err = r.topo.Ctr.Do(func() error {
		list, err := netlink.NeighList(0, netlink.FAMILY_V4)
		for _, n := range list {
			if n.IP.Equal(net.IP(peerOverlay.AsSlice())) {
				learned = n.HardwareAddr
			}
		}
		return err
	})
	if err != nil || !bytes.Equal(learned, peerMAC) {
		t.Fatalf("container's ARP entry for %v: %v (err %v), want the peer's %v", peerOverlay, learned, err, peerMAC)
	}
	if vtep, ok := r.d.d.fdb.Lookup(testbed.VNI, [6]byte(peerMAC)); !ok || vtep != [4]byte{192, 0, 2, 2} {
		t.Fatalf("FDB entry of the peer's MAC: %v %v", vtep, ok)
	}
}

// hostNeighbour returns the host's neighbour entry for the peer's underlay
// address on the uplink.
func hostNeighbour(t *testing.T, r *running) (state int, mac net.HardwareAddr) {
	t.Helper()
	err := r.topo.Host.Do(func() error {
		l, err := netlink.LinkByName(testbed.HostUplink)
		if err != nil {
			return err
		}
		list, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
		for _, n := range list {
			if n.IP.Equal(testbed.PeerUnderlayIP) {
				state, mac = n.State, n.HardwareAddr
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return state, mac
}

// setHostNeighbour overwrites the host's entry for the peer's underlay
// address, as aging or an administrator would.
func setHostNeighbour(t *testing.T, r *running, state int, mac net.HardwareAddr) {
	t.Helper()
	err := r.topo.Host.Do(func() error {
		l, err := netlink.LinkByName(testbed.HostUplink)
		if err != nil {
			return err
		}
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: state,
			IP: testbed.PeerUnderlayIP, HardwareAddr: mac})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestE2ENeighbourReprobe: mflow sends to the peer VTEP behind the
// kernel's back, so the kernel would leave the peer's neighbour entry
// STALE for ever. The daemon must have it re-probed (back to REACHABLE),
// and when the peer's MAC changes, follow the change: encapsulated
// traffic to the peer resumes with the new address.
func TestE2ENeighbourReprobe(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	nb := r.d.d.neigh // teardown clears the field if Run ends early
	// Fast probing, so that the test takes seconds, not a minute.
	for k, v := range map[string]string{
		"net.ipv4.neigh." + testbed.HostUplink + ".delay_first_probe_time": "1",
		"net.ipv4.neigh." + testbed.HostUplink + ".retrans_time_ms":        "200",
	} {
		if err := r.topo.Host.Sysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 1, 0, 3*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v %v", p, err)
	}
	waitState := func(want int, within time.Duration) (int, net.HardwareAddr) {
		deadline := time.Now().Add(within)
		for {
			st, mac := hostNeighbour(t, r)
			if st == want || time.Now().After(deadline) {
				return st, mac
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// 1. A STALE entry of a next hop in use is probed again.
	oldMAC := r.topo.PeerWireMAC
	setHostNeighbour(t, r, netlink.NUD_STALE, oldMAC)
	if st, _ := waitState(netlink.NUD_REACHABLE, 5*time.Second); st != netlink.NUD_REACHABLE {
		t.Fatalf("peer's neighbour entry in state %#x 5s after it went STALE, want REACHABLE (%#x)", st, netlink.NUD_REACHABLE)
	}
	if n := nb.reprobe.Load(); n == 0 {
		t.Error("no re-probe counted")
	}

	// 2. The peer's wire MAC changes; the host's entry still has the old
	// one (STALE, as after aging). Traffic to the peer must resume.
	newMAC := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x99}
	err := r.topo.Peer.Do(func() error {
		l, err := netlink.LinkByName(testbed.PeerWire)
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(l, newMAC)
	})
	if err != nil {
		t.Fatal(err)
	}
	setHostNeighbour(t, r, netlink.NUD_STALE, oldMAC)
	start := time.Now()
	resumed := false
	for time.Since(start) < 15*time.Second && !resumed {
		p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 1, 0, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		resumed = p.Received == 1
	}
	st, mac := hostNeighbour(t, r)
	if !resumed {
		t.Fatalf("no ping reply through the overlay 15s after the peer's MAC changed; host's entry %v state %#x", mac, st)
	}
	if !bytes.Equal(mac, newMAC) {
		t.Fatalf("host's entry for the peer: %v, want the new MAC %v", mac, newMAC)
	}
	t.Logf("traffic resumed %v after the MAC change; %d re-probes", time.Since(start).Round(time.Millisecond), nb.reprobe.Load())
}

// startVethDaemon is startDaemon with the network's device a veth pair
// mflow42 (mflow's end) / mflow42p (on the bridge), created here as an
// operator would.
func startVethDaemon(t *testing.T, policy string, workers, batch int) *running {
	t.Helper()
	cfg, err := config.Parse(testbed.MflowConfigDevice("veth", fmt.Sprintf("policy: %s, workers: %d, batch: %d", policy, workers, batch)))
	if err != nil {
		t.Fatal(err)
	}
	return startDaemonWith(t, cfg, (*testbed.Topology).AddMflowVeth)
}

// TestE2EVeth: a veth device instead of a TAP, both directions against the
// kernel's VxLAN peer: ping, a content-checked TCP stream each way, a UDP stream in
// order through microflow; afterwards the veth is left as found (no XDP
// program) and the counters balance, the veth's counted in the snapshot.
func TestE2EVeth(t *testing.T) {
	r := startVethDaemon(t, "microflow", 2, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping container → peer: %+v, %v", p, err)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping peer → container: %+v, %v", p, err)
	}
	const size = 20 << 20
	if res, err := traffic.TCPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, time.Minute, size); err != nil || !res.Verified || res.Bytes != size {
		t.Fatalf("TCP peer → container: %+v, %v", res, err)
	}
	if res, err := traffic.TCPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, time.Minute, size); err != nil || !res.Verified || res.Bytes != size {
		t.Fatalf("TCP container → peer: %+v, %v", res, err)
	}
	// GRO on the container's veth keeps the kernel from reordering after
	// mflow (see TestE2EUDPOrder).
	if err := r.topo.Ctr.SetOffloads(testbed.CtrDev, testbed.Offloads{TSO: true, GSO: true, GRO: true, TxCsum: true}); err != nil {
		t.Fatal(err)
	}
	u, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 200, Duration: 500 * time.Millisecond, Rate: 20000})
	if err != nil || u.Received == 0 || u.OutOfOrder != 0 || u.Duplicates != 0 {
		t.Fatalf("UDP peer → container: %+v, %v", u, err)
	}
	s := r.d.Snapshot()
	if len(s.Networks) != 1 || s.Networks[0].Device != "mflow42" || s.Networks[0].Delivered.Packets == 0 || s.Networks[0].Transmitted.Packets == 0 {
		t.Errorf("network counters: %+v", s.Networks)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if final := r.d.Snapshot(); final.Check() != nil {
		t.Error(final.Check())
	}
	err = r.topo.Host.Do(func() error {
		l, err := netlink.LinkByName("mflow42")
		if err != nil {
			return fmt.Errorf("the veth is gone after shutdown: %w", err)
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			return errors.New("an XDP program is still attached to the veth")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("UDP %d/%d received, 0 out of order; decap %+v encap %+v", u.Received, u.Sent, s.Decap, s.Encap)
}

// TestVethConfigErrors: a veth device that does not exist, or is not a
// veth, is a configuration error naming the network.
func TestVethConfigErrors(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mfv"})
	if err != nil {
		t.Fatalf("build testbed: %v", err)
	}
	t.Cleanup(func() { topo.Close() })
	for _, tc := range []struct{ name, want string }{
		{"mflow42", "expects an existing veth pair"},
		{"lo", "not a veth"},
	} {
		yaml := bytes.Replace(testbed.MflowConfigDevice("veth", "policy: single"), []byte("name: "+testbed.MflowVeth),
			[]byte("name: "+tc.name), 1)
		cfg, err := config.Parse(yaml)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(cfg, Options{Enter: topo.Host.Do, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			d.Close()
			t.Errorf("veth %s accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "networks[0].device") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("veth %s: %v; want a config error about networks[0].device saying %q", tc.name, err, tc.want)
		}
	}
}

// TestE2EVethDeleted: the veth deleted from under a running daemon. Frames
// for it are counted as veth_tx_error (not lost silently, not spun on),
// the daemon keeps running, and it still shuts down cleanly.
func TestE2EVethDeleted(t *testing.T) {
	r := startVethDaemon(t, "single", 1, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping peer → container: %+v, %v", p, err)
	}
	if err := r.topo.Host.DeleteLink(testbed.MflowVeth); err != nil {
		t.Fatal(err)
	}
	// More frames than the veth socket's UMEM holds: the daemon must not
	// wedge once they pile up on a dead tx ring.
	u, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 64, Duration: 500 * time.Millisecond, Rate: 20000, Drain: 100 * time.Millisecond})
	if err != nil || u.Received != 0 {
		t.Fatalf("UDP through a deleted veth: %+v, %v", u, err)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run ended when the veth went away: %v", err)
	default:
	}
	s := r.d.Snapshot()
	t.Logf("sent %d, veth_tx_error %d, delivered %d", u.Sent, dropOf(s, metrics.Decap, "veth_tx_error"), s.Decap.Delivered.Packets)
	// Every datagram after the deletion is counted (a tenth of slack for
	// losses before mflow under load); none may pass as delivered.
	if got := dropOf(s, metrics.Decap, "veth_tx_error"); got < u.Sent*9/10 {
		t.Errorf("veth_tx_error %d for %d datagrams sent to the deleted veth", got, u.Sent)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestE2ETapRPS: with steering.tap_rps: auto the TAP's receive queues
// carry the mask of every CPU, as do the transmit TAP's (vtep.transmit_rps
// defaults to auto on the tunnel path), and the frames mflow writes,
// handed to the CPUs' backlogs by flow hash, still arrive in order (UDP,
// both ways) and intact (TCP, both ways), with every frame accounted for.
func TestE2ETapRPS(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("auto is off on one CPU")
	}
	cfg := testConfig(t, "microflow", 2, 256)
	cfg.VTEP.Transmit = config.TransmitTunnel
	cfg.Steering.TapRPS = config.RPSAuto
	r := startDaemon(t, cfg)
	want, _ := cfg.Steering.TapRPSCPUs(allowedCPUs())
	if len(want) < 2 {
		t.Fatalf("auto on %d CPUs: %v", runtime.NumCPU(), want)
	}
	for q, got := range rpsMasks(t, r.topo.Host, testbed.MflowVeth) {
		if !sameMask(got, config.CPUMask(want)) {
			t.Fatalf("TAP rx-%d rps_cpus %q, want CPUs %v", q, got, want)
		}
	}
	// The transmit TAP: the loops' own queues without, their UDP queues
	// (the second half) with.
	loops := r.d.d.encapLoops()
	tx := rpsMasks(t, r.topo.Host, r.d.d.tunTx.Name())
	if len(tx) != 2*loops || r.d.d.txUDP != loops {
		t.Fatalf("transmit TAP: %d queues, UDP from %d; want %d, from %d", len(tx), r.d.d.txUDP, 2*loops, loops)
	}
	for q, got := range tx {
		if m := config.CPUMask(want); q < loops && !sameMask(got, "0") || q >= loops && !sameMask(got, m) {
			t.Fatalf("transmit TAP rx-%d rps_cpus %q (loops %d, CPUs %v)", q, got, loops, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	udpDecapInOrder(ctx, t, r, "RPS on the TAP")
	before := r.d.d.tx.udpQueued.Load()
	u, err := traffic.UDPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, traffic.UDPOptions{Size: 1000, Duration: 2 * time.Second})
	if err != nil || u.Received == 0 || u.OutOfOrder != 0 || u.Duplicates != 0 {
		t.Fatalf("UDP container → peer with RPS on the transmit TAP: %+v, %v; want no reordering", u, err)
	}
	if q := r.d.d.tx.udpQueued.Load() - before; q == 0 {
		t.Fatalf("no packet of the UDP stream went through the transmit TAP's UDP queues")
	}
	tcpBefore := r.d.d.tx.udpQueued.Load()
	const size = 50 << 20
	for _, dir := range []struct {
		name     string
		from, to *testbed.NS
		addr     netip.Addr
	}{{"peer → container", r.topo.Peer, r.topo.Ctr, ctrOverlay}, {"container → peer", r.topo.Ctr, r.topo.Peer, peerOverlay}} {
		res, err := traffic.TCPStream(ctx, dir.from, dir.to, dir.addr, time.Minute, size)
		if err != nil || !res.Verified || res.Bytes != size {
			t.Fatalf("TCP %s: %+v, %v", dir.name, res, err)
		}
		t.Logf("TCP %s: %.2f Gbit/s, content verified", dir.name, res.Gbps)
	}
	if q := r.d.d.tx.udpQueued.Load() - tcpBefore; q != 0 {
		t.Fatalf("%d packets of the TCP streams went through the UDP queues", q)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Fatal(s.Check())
	}
}

// udpDecapInOrder sends a UDP stream peer → container for 2 s (after a
// ping that warms the ARP entries, so that it does not start with a
// resolution) and fails the test unless something arrived, in order and
// without duplicates.
func udpDecapInOrder(ctx context.Context, t *testing.T, r *running, what string) {
	t.Helper()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v %v", p, err)
	}
	res, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 1000, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("UDP peer → container: %+v", res)
	if res.Received == 0 || res.OutOfOrder != 0 || res.Duplicates != 0 {
		t.Fatalf("UDP stream through %s: %+v; want no reordering", what, res)
	}
}

// rpsMasks reads rps_cpus of every receive queue of link in ns (at least
// rx-0).
func rpsMasks(t *testing.T, ns *testbed.NS, link string) []string {
	t.Helper()
	var out []string
	for q := 0; ; q++ {
		m, err := ns.RPS(link, q)
		if err != nil && q == 0 {
			t.Fatal(err)
		}
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

// sameMask compares two hexadecimal CPU masks, ignoring commas and
// leading zeros (the kernel pads to its CPU count).
func sameMask(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimLeft(strings.ReplaceAll(s, ",", ""), "0")
		return s
	}
	return norm(a) == norm(b)
}

// threadsOn counts this process's threads allowed on cpu alone.
func threadsOn(t *testing.T, cpu int) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && strings.TrimSpace(v) == fmt.Sprint(cpu) {
				n++
			}
		}
	}
	return n
}

// TestE2EEncapPinned: steering.cpus.encap puts each encap loop's thread
// on its CPU (and on nothing else), traffic still flows, and the pinned
// threads end with the daemon.
func TestE2EEncapPinned(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	cpu := runtime.NumCPU() - 1
	before := threadsOn(t, cpu)
	cfg, err := config.Parse(testbed.MflowConfig(fmt.Sprintf("policy: single, workers: 1, tap_queues: 2, cpus: {encap: [%d]}", cpu)))
	if err != nil {
		t.Fatal(err)
	}
	r := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 5, 20*time.Millisecond, 2*time.Second)
	if err != nil || p.Received != p.Sent {
		t.Fatalf("ping container → peer: %+v, %v", p, err)
	}
	loops := 1
	if r.d.d.tunTx != nil {
		loops = r.d.d.tapQueues(0)
	}
	if got := threadsOn(t, cpu) - before; got != loops {
		t.Errorf("%d threads pinned to CPU %d, want %d (one per encap loop)", got, cpu, loops)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for threadsOn(t, cpu) > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := threadsOn(t, cpu); n > before {
		t.Errorf("%d threads still pinned to CPU %d after Run, %d before", n, cpu, before)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Error(s.Check())
	}
}
