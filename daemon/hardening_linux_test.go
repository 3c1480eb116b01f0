package daemon

import (
	"context"
	"testing"
	"time"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
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
