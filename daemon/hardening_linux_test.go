package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"mflow/bench/gen"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/dataplane"
	"mflow/metrics"
	"mflow/steer"
	"mflow/vxlan"
	"mflow/xsk"
	"mflow/xsk/xsktest"
)

// TestE2EUplinkUnusedQueues: an uplink veth made the way `ip link add …
// type veth` makes it allocates one rx queue per possible CPU but uses
// one. With the default `queues: all` the daemon must serve the queues in
// use (binding an unused one fails with EINVAL) and forward.
func TestE2EUplinkUnusedQueues(t *testing.T) {
	r := startDaemonOn(t, testConfig(t, "microflow", 2, 64), testbed.Options{Prefix: "mfq", WireDefaultQueues: true}, func(topo *testbed.Topology) error {
		l, err := topo.Host.Link(testbed.HostUplink)
		if err != nil {
			return err
		}
		if n := l.Attrs().NumRxQueues; n < 2 {
			t.Skipf("the kernel allocated %d rx queue(s) for a default veth (one per possible CPU): nothing unused to skip on this machine", n)
		}
		return nil
	})
	if got := r.d.d.queues; len(got) != 1 || got[0] != 0 {
		t.Errorf("queues served: %v, want [0] (the one the veth uses)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping peer → container: %+v, %v", p, err)
	}
}

// reloadConfig is the testbed's configuration with network 42's peers and,
// when peers43 is not empty, a second network, VNI 43 on a TAP mflow43
// (on no bridge), with those peers; extra is appended to the file.
func reloadConfig(t *testing.T, peers42, peers43, extra string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`
uplink: {interface: %s}
vtep: {address: %s, port: %d}
networks:
  - vni: %d
    device: {type: tap, name: %s, bridge: %s, mtu: %d}
    peers: [%s]
`, testbed.HostUplink, testbed.HostUnderlayIP, testbed.VxLANPort, testbed.VNI, testbed.MflowVeth, testbed.Bridge, testbed.OverlayMTU, peers42)
	if peers43 != "" {
		y += fmt.Sprintf("  - vni: 43\n    device: {type: tap, name: mflow43, mtu: %d}\n    peers: [%s]\n", testbed.OverlayMTU, peers43)
	}
	y += "steering: {policy: microflow, workers: 2, batch: 64}\nmetrics: {listen: \"\"}\n" + extra
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestE2EReloadPeers: a reload that changes a network's peers takes effect
// in both directions. The daemon starts with the wrong peer (the testbed's
// peer is refused); after a reload that names it, ping works; after a
// reload that removes it again, frames from it are refused and frames to
// it are no longer sent, although the FDB learned its station.
func TestE2EReloadPeers(t *testing.T) {
	for _, tx := range []config.Transmit{config.TransmitSocket, config.TransmitAFXDP, config.TransmitTunnel} {
		t.Run(string(tx), func(t *testing.T) { testReloadPeers(t, tx) })
	}
}

func testReloadPeers(t *testing.T, tx config.Transmit) {
	wrong, right := "192.0.2.9", testbed.PeerUnderlayIP.String()
	cfg := func(peers string) *config.Config {
		c := reloadConfig(t, peers, "", "")
		c.VTEP.Transmit = tx
		return c
	}
	r := startDaemon(t, cfg(wrong))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 500*time.Millisecond); err != nil || p.Received != 0 {
		t.Fatalf("ping from a VTEP that is not a peer: %+v, %v; want no answer", p, err)
	}
	refused := dropOf(r.d.Snapshot(), metrics.Decap, "peer_not_allowed")
	if refused == 0 {
		t.Fatal("no peer_not_allowed drop before the reload")
	}

	changes, err := r.d.Reload(cfg(right))
	if err != nil || !slices.Equal(changes, []string{"networks[0].peers"}) {
		t.Fatalf("Reload: %q, %v; want networks[0].peers changed", changes, err)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping peer → container after the reload: %+v, %v", p, err)
	}
	if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping container → peer after the reload: %+v, %v", p, err)
	}
	peerMAC, err := r.topo.Peer.HWAddr(testbed.VxLANDev)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.d.d.fdb.Lookup(testbed.VNI, [6]byte(peerMAC)); !ok {
		t.Fatal("the peer's station was not learned")
	}
	// The peer's ARP retries from before the reload may still have been
	// counted; from now on nothing of it is refused.
	refused = dropOf(r.d.Snapshot(), metrics.Decap, "peer_not_allowed")
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping peer → container after the reload: %+v, %v", p, err)
	}
	if again := dropOf(r.d.Snapshot(), metrics.Decap, "peer_not_allowed"); again != refused {
		t.Errorf("peer_not_allowed went from %d to %d after the peer was allowed", refused, again)
	}

	// Remove the peer again: the container's datagrams to the peer's
	// station (in its ARP cache, in the FDB) must not reach it.
	if _, err := r.d.Reload(cfg(wrong)); err != nil {
		t.Fatal(err)
	}
	u, err := traffic.UDPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, traffic.UDPOptions{Size: 100, Duration: 200 * time.Millisecond, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if u.Sent == 0 || u.Received != 0 {
		t.Errorf("UDP container → removed peer: %d of %d datagrams arrived; want none", u.Received, u.Sent)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 500*time.Millisecond); err != nil || p.Received != 0 {
		t.Errorf("ping from the removed peer: %+v, %v; want no answer", p, err)
	}
}

// TestE2EReloadRefused: a reload that changes what cannot change while
// running is refused as a whole, naming the fields, and the daemon goes on
// with the old configuration (also for the reloadable part of the same
// file).
func TestE2EReloadRefused(t *testing.T) {
	peer := testbed.PeerUnderlayIP.String()
	r := startDaemon(t, reloadConfig(t, peer, "", ""))
	bad := reloadConfig(t, "192.0.2.9", "", "")
	bad.Steering.Workers = 3
	bad.VTEP.Port = 8472
	bad.Networks[0].Device.MTU = 1400
	changes, err := r.d.Reload(bad)
	if !errors.Is(err, ErrNotReloadable) || changes != nil {
		t.Fatalf("Reload of workers, port and MTU: %q, %v; want ErrNotReloadable", changes, err)
	}
	for _, f := range []string{"steering.workers", "vtep.port", "networks[0].device.mtu"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("refusal %q does not name %s", err, f)
		}
	}
	if strings.Contains(err.Error(), "peers") {
		t.Errorf("refusal %q names the peers, which could change", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping after a refused reload (the old peers must still hold): %+v, %v", p, err)
	}
	// The running configuration is the old one: reloading it is no change.
	if changes, err := r.d.Reload(reloadConfig(t, peer, "", "")); err != nil || len(changes) != 0 {
		t.Errorf("Reload of the original configuration after a refusal: %q, %v; want no change", changes, err)
	}
	// Adding a network needs a restart too.
	if _, err := r.d.Reload(reloadConfig(t, peer, "192.0.2.3", "")); !errors.Is(err, ErrNotReloadable) || !strings.Contains(err.Error(), "vni 43 added") {
		t.Errorf("Reload adding a network: %v; want ErrNotReloadable naming it", err)
	}
}

// TestE2EReloadKeepsTraffic: reloads that change one network's peers do
// not disturb another's traffic: a UDP stream through network 42 loses
// nothing and stays in order while network 43's peers change back and
// forth.
func TestE2EReloadKeepsTraffic(t *testing.T) {
	peer := testbed.PeerUnderlayIP.String()
	r := startDaemon(t, reloadConfig(t, peer, "192.0.2.3", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// GRO on the container's veth keeps the kernel from reordering after
	// mflow (see TestE2EUDPOrder); a first ping resolves ARP.
	if err := r.topo.Ctr.SetOffloads(testbed.CtrDev, testbed.Offloads{TSO: true, GSO: true, GRO: true, TxCsum: true}); err != nil {
		t.Fatal(err)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v %v", p, err)
	}
	before := r.d.Snapshot()
	done := make(chan struct{})
	reloads := 0
	var reloadErr error
	go func() {
		defer close(done)
		time.Sleep(200 * time.Millisecond)
		for i := range 20 {
			p43 := "192.0.2.3"
			if i%2 == 0 {
				p43 = "192.0.2.3, 192.0.2.4"
			}
			if _, err := r.d.Reload(reloadConfig(t, peer, p43, "")); err != nil {
				reloadErr = err
				return
			}
			reloads++
			time.Sleep(50 * time.Millisecond)
		}
	}()
	u, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 200, Duration: 1500 * time.Millisecond, Rate: 3000})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if reloadErr != nil || reloads != 20 {
		t.Fatalf("%d reloads, then %v", reloads, reloadErr)
	}
	if u.Sent == 0 || u.Received != u.Sent || u.OutOfOrder != 0 || u.Duplicates != 0 {
		t.Errorf("UDP through network 42 across %d reloads of network 43: %+v; want every datagram, in order", reloads, u)
	}
	after := r.d.Snapshot()
	if d := after.Dropped(metrics.Decap) - before.Dropped(metrics.Decap); d != 0 {
		t.Errorf("%d decap drops during the reloads", d)
	}
	if got := r.d.d.fdb.Flood(43); len(got) != 1 || got[0] != [4]byte{192, 0, 2, 3} {
		t.Errorf("network 43's flood list after the last reload: %v, want [192.0.2.3]", got)
	}
	t.Logf("%d reloads during a UDP stream of %d datagrams: all received in order", reloads, u.Sent)
}

// goneDevice is a fake device whose writes fail as a whole, like a TAP
// deleted from under the daemon.
type goneDevice struct{ fakeDevice }

func (g *goneDevice) WriteFrames(frames [][]byte, off int) (int, error) {
	return 0, errors.New("write tap: file descriptor in bad state")
}

// TestSinkOneDeviceFails: with two networks, a device whose write fails
// loses only its own frames, counted under its write error reason; the
// other network's frames of the same batches count as delivered, and
// nothing goes to sink_error.
func TestSinkOneDeviceFails(t *testing.T) {
	d, devs := testDaemon()
	gone := &goneDevice{fakeDevice{name: "mflow43"}}
	d.devs[1] = gone
	q, err := xsktest.New(xsk.Options{NumFrames: 256, FillSize: 128, RxSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Fill(128)
	e, err := dataplane.New(newXSKSource(q, 16), newDeviceSink(d, 16),
		dataplane.Config{Policy: steer.Single, Workers: 1, Batch: 16, Stages: []dataplane.Stage{d.stage}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	const n = 200 // alternating networks 42 and 43: every batch has both
	for i := range n {
		f, _ := vxlanFrame(t, testPeer, uint32(42+i%2), net2MAC(i%2), byte(i))
		for !q.Inject(f) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Released < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && err != context.Canceled {
		t.Fatal(err)
	}
	d.engines = []*dataplane.Engine{e}
	s := d.snapshot()
	if got := len(devs[0].frames()); got != n/2 {
		t.Errorf("mflow42 got %d frames, want %d", got, n/2)
	}
	if got := dropOf(s, metrics.Decap, "sink_error"); got != 0 {
		t.Errorf("sink_error %d: the working device's frames were counted as dropped", got)
	}
	if got := dropOf(s, metrics.Decap, "fake_write_error"); got != n/2 {
		t.Errorf("fake_write_error %d, want the failed device's %d frames", got, n/2)
	}
	if s.Decap.Delivered.Packets != n/2 {
		t.Errorf("delivered %d, want %d", s.Decap.Delivered.Packets, n/2)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestE2EReceivedBytes: the received byte counters of both directions
// count what entered: 100 VxLAN frames of 128 bytes from the peer (for a
// VNI that is not configured, so nothing answers) are 12800 bytes of decap
// input; UDP datagrams from the container are at least their frames'
// bytes of encap input.
func TestE2EReceivedBytes(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 32))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner := &gen.FrameSpec{
		SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8},
		SrcIP: peerOverlay, DstIP: ctrOverlay, SrcPort: 1000, DstPort: 2000,
	}
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: r.topo.PeerWireMAC, DstMAC: r.topo.HostUplinkMAC,
		SrcIP: netip.MustParseAddr("192.0.2.2"), DstIP: netip.MustParseAddr("192.0.2.1"), SrcPort: 50000,
		VNI: 99, Inner: inner, Size: 128,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := gen.Run(ctx, r.topo.Peer, testbed.PeerWire, f.Data, gen.Options{Count: 100}); err != nil || st.Sent != 100 {
		t.Fatalf("generator: %+v, %v", st, err)
	}
	var s metrics.Snapshot
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s = r.d.Snapshot(); s.Decap.Received.Packets >= 100 && s.Decap.InFlight == 0 {
			break
		}
	}
	if s.Decap.Received != (metrics.Counter{Packets: 100, Bytes: 100 * 128}) {
		t.Errorf("decap received %+v, want 100 packets, 12800 bytes", s.Decap.Received)
	}

	const n, size = 50, 100
	frame := uint64(vxlan.EthernetLen + 20 + 8 + size) // inner Ethernet, IPv4, UDP, payload
	u, err := traffic.UDPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, traffic.UDPOptions{Size: size, Duration: 50 * time.Millisecond, Rate: 1000})
	if err != nil || u.Sent < n/2 {
		t.Fatalf("UDP container → peer: %+v, %v", u, err)
	}
	s = r.d.Snapshot()
	// Besides the datagrams, the container sent ARP (at least 42 bytes a
	// frame, at most an MTU-sized frame).
	other := s.Encap.Received.Packets - u.Sent
	if lo, hi := u.Sent*frame+other*42, u.Sent*frame+other*(testbed.OverlayMTU+vxlan.EthernetLen); s.Encap.Received.Packets < u.Sent || s.Encap.Received.Bytes < lo || s.Encap.Received.Bytes > hi {
		t.Errorf("encap received %+v after %d datagrams of %d-byte frames; want bytes in [%d, %d]", s.Encap.Received, u.Sent, frame, lo, hi)
	}
}

// checkIn runs CheckHost in the host namespace of topo.
func checkIn(t *testing.T, topo *testbed.Topology, cfg *config.Config) map[string]Check {
	t.Helper()
	var checks []Check
	if err := topo.Host.Do(func() error { checks = CheckHost(cfg); return nil }); err != nil {
		t.Fatal(err)
	}
	out := map[string]Check{}
	for _, c := range checks {
		out[c.Name] = c
	}
	return out
}

// TestCheckHostNextToDaemon: `mflow check` against a running daemon
// passes (it attaches nothing, so the daemon's attached program is no
// conflict), says that mflow's program serves the uplink, and disturbs
// nothing.
func TestCheckHostNextToDaemon(t *testing.T) {
	cfg := testConfig(t, "single", 1, 64)
	r := startDaemon(t, cfg)
	for name, c := range checkIn(t, r.topo, cfg) {
		if !c.OK {
			t.Errorf("check %s failed next to a running daemon: %s", name, c.Detail)
		}
	}
	if c := checkIn(t, r.topo, cfg)["XDP on uplink"]; !strings.Contains(c.Detail, "mflow's program") {
		t.Errorf("XDP on uplink: %+v; want it to name mflow's attached program", c)
	}
	// check predicts the transmit path run took.
	if c := checkIn(t, r.topo, cfg)["transmit path"]; !c.OK || !strings.HasPrefix(c.Detail, "auto: "+string(r.d.d.txPath)) {
		t.Errorf("transmit path check %+v; the daemon runs %s", c, r.d.d.txPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping after the checks: %+v, %v", p, err)
	}
}

// TestCheckHostFailures: a kernel VxLAN device up on the VTEP's port, and
// a TAP's bridge that does not exist, fail the check (run would compete
// with the kernel, or fail).
func TestCheckHostFailures(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mfc", HostVxLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	cfg := testConfig(t, "single", 1, 64)
	if c := checkIn(t, topo, cfg)["kernel VxLAN"]; c.OK || !strings.Contains(c.Detail, testbed.VxLANDev) {
		t.Errorf("kernel VxLAN check with %s up on port %d: %+v; want a failure naming it", testbed.VxLANDev, testbed.VxLANPort, c)
	}
	// Down, it holds no socket: no failure.
	if err := topo.Host.Do(func() error {
		l, err := netlink.LinkByName(testbed.VxLANDev)
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	}); err != nil {
		t.Fatal(err)
	}
	if c := checkIn(t, topo, cfg)["kernel VxLAN"]; !c.OK {
		t.Errorf("kernel VxLAN check with %s down: %+v", testbed.VxLANDev, c)
	}
	cfg.Networks[0].Device.Bridge = "br99"
	if c := checkIn(t, topo, cfg)["networks[0] bridge br99"]; c.OK || !strings.Contains(c.Detail, "create it first") {
		t.Errorf("check of a missing bridge: %+v; want a failure", c)
	}
}

// waitReady waits until the daemon reports ready.
func waitReady(t *testing.T, r *running) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = r.d.Ready(); err == nil {
			return
		}
	}
	t.Fatalf("daemon not ready after 5s: %v", err)
}

// TestE2EReady: a running daemon is ready; with its TAP down, or its
// uplink's XDP program gone, it says so and names what.
func TestE2EReady(t *testing.T) {
	r := startDaemon(t, testConfig(t, "single", 1, 64))
	waitReady(t, r)
	if err := r.d.Live(); err != nil {
		t.Errorf("Live: %v", err)
	}
	setDown := func(name string) {
		t.Helper()
		if err := r.topo.Host.Do(func() error {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			return netlink.LinkSetDown(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	setDown(testbed.MflowVeth)
	if err := r.d.Ready(); err == nil || !strings.Contains(err.Error(), "device mflow42 is down") {
		t.Errorf("Ready with the TAP down: %v", err)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatal(err)
	}
	if r.d.Ready() == nil || r.d.Live() == nil {
		t.Errorf("ready %v, live %v after shutdown; want errors", r.d.Ready(), r.d.Live())
	}
}

// TestE2ETAPDeleted: a TAP deleted from outside ends Run with an error
// wrapping ErrDeviceLost that names it, promptly (so that a supervisor
// restarts mflow), and the shutdown is clean.
func TestE2ETAPDeleted(t *testing.T) {
	r := startDaemon(t, testConfig(t, "single", 1, 64))
	waitReady(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v, %v", p, err)
	}
	if err := r.topo.Host.DeleteLink(testbed.MflowVeth); err != nil {
		t.Fatal(err)
	}
	expectDeviceLost(t, r, "TAP mflow42")
}

// expectDeviceLost waits up to 3 s for Run to end with ErrDeviceLost
// naming device (after a test deleted it) and checks that the counts
// still balance.
func expectDeviceLost(t *testing.T, r *running, device string) {
	t.Helper()
	select {
	case err := <-r.done:
		close(r.done)
		if !errors.Is(err, ErrDeviceLost) || !strings.Contains(err.Error(), device) {
			t.Fatalf("Run after %s was deleted: %v; want ErrDeviceLost naming it", device, err)
		}
		t.Logf("Run: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatalf("Run still serving 3s after %s was deleted", device)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Error(s.Check())
	}
}

// TestE2ETransmitTAPDeleted: the tunnel path's transmit TAP deleted from
// outside ends Run with ErrDeviceLost naming it, as a deleted TAP does,
// and the counts still balance.
func TestE2ETransmitTAPDeleted(t *testing.T) {
	cfg := testConfig(t, "single", 1, 64)
	cfg.VTEP.Transmit = config.TransmitTunnel
	r := startDaemon(t, cfg)
	waitReady(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v, %v", p, err)
	}
	name := r.d.d.tunTx.Name()
	if err := r.topo.Host.DeleteLink(name); err != nil {
		t.Fatal(err)
	}
	expectDeviceLost(t, r, "transmit TAP "+name)
}

// TestE2EBridgeRecreated: the TAP's bridge deleted and created again (as a
// network manager restarting would): the daemon puts its TAP back on the
// new bridge, and traffic flows again.
func TestE2EBridgeRecreated(t *testing.T) {
	r := startDaemon(t, testConfig(t, "single", 1, 64))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v, %v", p, err)
	}
	if err := r.topo.Host.DeleteLink(testbed.Bridge); err != nil {
		t.Fatal(err)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 300*time.Millisecond); err != nil || p.Received != 0 {
		t.Fatalf("ping without a bridge: %+v, %v; want no answer", p, err)
	}
	// The bridge comes back with the container's port, not with mflow's.
	if err := r.topo.Host.AddBridge(testbed.Bridge, testbed.OverlayMTU); err != nil {
		t.Fatal(err)
	}
	if err := r.topo.Host.SetMaster(testbed.HostCtrVeth, testbed.Bridge); err != nil {
		t.Fatal(err)
	}
	var master string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if master, _ = r.topo.Host.Master(testbed.MflowVeth); master == testbed.Bridge {
			break
		}
	}
	if master != testbed.Bridge {
		t.Fatalf("TAP's master 3s after the bridge came back: %q, want %s", master, testbed.Bridge)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping after the bridge came back: %+v, %v", p, err)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}

// TestE2EStaticFDB: a static FDB entry sends frames to its VTEP whatever
// learning heard, from the start; a reload removes it (traffic goes to the
// learned VTEP again) and adds it back.
func TestE2EStaticFDB(t *testing.T) {
	peerMAC := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0x01}
	peer, decoy := testbed.PeerUnderlayIP.String(), "192.0.2.5"
	withStatic := reloadConfig(t, peer+", "+decoy, "", "")
	withStatic.Networks[0].FDB = []config.FDBEntry{{MAC: peerMAC.String(), VTEP: decoy}}
	if err := withStatic.Validate(); err != nil {
		t.Fatal(err)
	}
	without := reloadConfig(t, peer+", "+decoy, "", "")
	r := startDaemonOn(t, withStatic, testbed.Options{Prefix: "mfs"}, func(topo *testbed.Topology) error {
		return topo.Peer.Do(func() error { // a MAC the configuration can name
			l, err := netlink.LinkByName(testbed.VxLANDev)
			if err != nil {
				return err
			}
			return netlink.LinkSetHardwareAddr(l, peerMAC)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The peer's pings teach the container and the FDB where the peer's
	// MAC is (the replies follow the static entry to the decoy).
	traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 300*time.Millisecond)
	if v, ok := r.d.d.fdb.Lookup(testbed.VNI, [6]byte(peerMAC)); !ok || v != [4]byte(testbed.PeerUnderlayIP) {
		t.Fatalf("learned entry of the peer's MAC: %v %v", v, ok)
	}
	udp := func() traffic.UDPResult {
		t.Helper()
		u, err := traffic.UDPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, traffic.UDPOptions{Size: 100, Duration: 100 * time.Millisecond, Rate: 1000})
		if err != nil || u.Sent == 0 {
			t.Fatalf("UDP container → peer: %+v, %v", u, err)
		}
		return u
	}
	if u := udp(); u.Received != 0 {
		t.Errorf("with a static entry to %s, %d of %d datagrams reached the peer", decoy, u.Received, u.Sent)
	}
	if ch, err := r.d.Reload(without); err != nil || !slices.Equal(ch, []string{"networks[0].fdb"}) {
		t.Fatalf("Reload removing the entry: %q, %v", ch, err)
	}
	if u := udp(); u.Received != u.Sent {
		t.Errorf("without the static entry: %d of %d datagrams reached the peer", u.Received, u.Sent)
	}
	if _, err := r.d.Reload(withStatic); err != nil {
		t.Fatal(err)
	}
	if u := udp(); u.Received != 0 {
		t.Errorf("static entry added back: %d of %d datagrams reached the peer", u.Received, u.Sent)
	}
}

// TestE2EReloadBridge: a reload moves a TAP to another bridge and back,
// without a restart; a bridge that does not exist fails the reload and
// changes nothing (the peers of the same file included).
func TestE2EReloadBridge(t *testing.T) {
	peer := testbed.PeerUnderlayIP.String()
	r := startDaemon(t, reloadConfig(t, peer, "", ""))
	if err := r.topo.Host.AddBridge("br43", testbed.OverlayMTU); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ping := func(want int) {
		t.Helper()
		if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 2, 20*time.Millisecond, 500*time.Millisecond); err != nil || p.Received != want {
			t.Fatalf("ping: %+v, %v; want %d answers", p, err, want)
		}
	}
	master := func() string {
		t.Helper()
		m, err := r.topo.Host.Master(testbed.MflowVeth)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ping(2)
	moved := reloadConfig(t, peer, "", "")
	moved.Networks[0].Device.Bridge = "br43"
	if ch, err := r.d.Reload(moved); err != nil || !slices.Equal(ch, []string{"networks[0].device.bridge"}) {
		t.Fatalf("Reload to br43: %q, %v", ch, err)
	}
	if m := master(); m != "br43" {
		t.Fatalf("TAP's master after the reload: %q", m)
	}
	ping(0) // the container is on br42
	missing := reloadConfig(t, "192.0.2.9", "", "")
	missing.Networks[0].Device.Bridge = "br99"
	if _, err := r.d.Reload(missing); err == nil || !strings.Contains(err.Error(), "br99") {
		t.Fatalf("Reload to a missing bridge: %v", err)
	}
	if m := master(); m != "br43" {
		t.Errorf("TAP's master after a failed reload: %q, want br43", m)
	}
	if ch, err := r.d.Reload(reloadConfig(t, peer, "", "")); err != nil || !slices.Equal(ch, []string{"networks[0].device.bridge"}) {
		t.Fatalf("Reload back to br42 (the peers unchanged by the failed reload): %q, %v", ch, err)
	}
	if m := master(); m != testbed.Bridge {
		t.Fatalf("TAP's master: %q, want %s", m, testbed.Bridge)
	}
	ping(2)
}

// TestCheckHostQueuesInUse: on an iproute2-style veth uplink (more rx
// queues allocated than used), check counts the queues in use, so a
// configured queue the device does not use fails the check, as it would
// fail run.
func TestCheckHostQueuesInUse(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mfcq", WireDefaultQueues: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	l, err := topo.Host.Link(testbed.HostUplink)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().NumRxQueues < 2 {
		t.Skipf("the kernel allocated %d rx queue(s) for a default veth: nothing unused on this machine", l.Attrs().NumRxQueues)
	}
	cfg := testConfig(t, "single", 1, 64)
	if c := checkIn(t, topo, cfg)["config against host"]; !c.OK {
		t.Errorf("queues: all: %+v", c)
	}
	cfg.Uplink.Queues = config.Queues{List: []int{1}}
	if c := checkIn(t, topo, cfg)["config against host"]; c.OK || !strings.Contains(c.Detail, "queue 1") {
		t.Errorf("queues: [1] on a veth using one queue: %+v; want a failure", c)
	}
}

// TestE2ESocketDropsExported: frames the kernel drops at the uplink's
// AF_XDP socket (a small UMEM and a burst far faster than one worker
// writing to the TAP) appear under mflow_dropped_packets_total with the
// xsk reasons, equal to the socket's own statistics, while conservation
// of what mflow received still holds.
func TestE2ESocketDropsExported(t *testing.T) {
	r := startDaemonOpts(t, testConfig(t, "single", 1, 64), testbed.Options{Prefix: "mfx"}, Options{Frames: 64}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner := &gen.FrameSpec{
		SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		SrcIP: peerOverlay, DstIP: ctrOverlay, SrcPort: 1000, DstPort: 2000,
	}
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: r.topo.PeerWireMAC, DstMAC: r.topo.HostUplinkMAC,
		SrcIP: netip.MustParseAddr("192.0.2.2"), DstIP: netip.MustParseAddr("192.0.2.1"), SrcPort: 50000,
		VNI: testbed.VNI, Inner: inner, Size: 128,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200000
	if st, err := gen.Run(ctx, r.topo.Peer, testbed.PeerWire, f.Data, gen.Options{Count: n}); err != nil || st.Sent != n {
		t.Fatalf("generator: %+v, %v", st, err)
	}
	var s metrics.Snapshot
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s = r.d.Snapshot(); s.Decap.InFlight == 0 {
			break
		}
	}
	var xsk uint64
	for _, x := range s.XSK {
		xsk += x.RxDropped + x.RxRingFull
	}
	if xsk == 0 {
		t.Skipf("no drops at the socket: mflow kept up with %d frames on this machine (received %d)", n, s.Decap.Received.Packets)
	}
	fams, err := metrics.NewRegistry(func() metrics.Snapshot { return s }).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported uint64
	for _, fam := range fams {
		if fam.GetName() != metrics.NameDropped {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && (l.GetValue() == metrics.ReasonXSKRxDropped || l.GetValue() == metrics.ReasonXSKRxRingFull) {
					exported += uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	if exported != xsk {
		t.Errorf("exported xsk drops %d, socket statistics %d", exported, xsk)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
	t.Logf("%d sent, %d received by mflow, %d dropped at the socket (exported as drops)", n, s.Decap.Received.Packets, xsk)
}

// TestCheckRPS: the RPS check passes when rps_cpus is writable, passes
// with a warning for auto where it is not (the daemon then runs without
// RPS), fails for a CPU list, says "not checked" where the probe is not in
// this sysfs, and "off" when both keys are off.
func TestCheckRPS(t *testing.T) {
	cfg := config.Default()
	ok := func(string) error { return nil }
	ro := func(string) error { return unix.EROFS }
	missing := func(string) error { return unix.ENOENT }
	if d, err := checkRPS(cfg, "p", ok); err != nil || !strings.Contains(d, "vtep.transmit_rps auto: rps_cpus is writable") {
		t.Errorf("default, writable: %q, %v", d, err)
	}
	if d, err := checkRPS(cfg, "p", ro); err != nil || !strings.Contains(d, "runs without RPS") {
		t.Errorf("default, read-only: %q, %v; want a pass that says it runs without RPS", d, err)
	}
	if d, err := checkRPS(cfg, "p", missing); err != nil || !strings.Contains(d, "not checked") {
		t.Errorf("default, no probe: %q, %v", d, err)
	}
	list := *cfg
	list.Steering.TapRPS = "0-1"
	if _, err := checkRPS(&list, "p", ro); err == nil || !strings.Contains(err.Error(), "steering.tap_rps 0-1") {
		t.Errorf("a CPU list, read-only: %v; want a failure naming it", err)
	}
	off := *cfg
	off.VTEP.TransmitRPS = config.RPSOff
	if d, err := checkRPS(&off, "p", ro); err != nil || d != "off" {
		t.Errorf("both off: %q, %v", d, err)
	}
}
