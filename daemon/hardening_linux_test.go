package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/metrics"
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
	for _, tx := range []config.Transmit{config.TransmitSocket, config.TransmitAFXDP} {
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
