package daemon

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
)

// TestE2EUplinkDownUp: the uplink going down and up again (a cable pulled
// and put back) does not end the daemon, and traffic flows again, both
// ways, once the link is back.
func TestE2EUplinkDownUp(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping before: %+v, %v", p, err)
	}
	setUp := func(up bool) {
		t.Helper()
		if err := r.topo.Host.Do(func() error {
			l, err := netlink.LinkByName(testbed.HostUplink)
			if err != nil {
				return err
			}
			if up {
				return netlink.LinkSetUp(l)
			}
			return netlink.LinkSetDown(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	setUp(false)
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-r.done:
		t.Fatalf("the daemon stopped while the uplink was down: %v", err)
	default:
	}
	setUp(true)
	// The veth needs a moment to carry again; then every ping answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, time.Second)
		if err == nil && p.Received == p.Sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer → container after the uplink came back: %+v, %v", p, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 3, 20*time.Millisecond, 2*time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("container → peer after the uplink came back: %+v, %v", p, err)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Fatal(s.Check())
	}
}

// overloadHeapBound is the documented bound (docs/OPERATIONS.md) on how
// much the Go heap may grow under a flood: frames stay in the fixed UMEM
// and batches come from a fixed pool, so load adds no per-packet memory.
const overloadHeapBound = 32 << 20

// TestE2EOverloadMemory floods the container through mflow far above what
// it can deliver for 3 s and samples the process's Go heap meanwhile: it
// stays within overloadHeapBound of its size before the flood, and a ping
// right after the flood is answered (the queues drained).
func TestE2EOverloadMemory(t *testing.T) {
	r := startDaemon(t, testConfig(t, "microflow", 2, 256))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 1, 0, 2*time.Second); err != nil || p.Received != 1 {
		t.Fatalf("ping: %+v %v", p, err)
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	runtime.GC()
	before, peak := heap(), uint64(0)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, heap())
			}
		}
	}()
	res, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 1400, Duration: 3 * time.Second})
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: %+v; Go heap in use %d MiB before, %d MiB at the peak", res, before>>20, peak>>20)
	if peak > before+overloadHeapBound {
		t.Errorf("the Go heap grew from %d to %d MiB under the flood; bound %d MiB", before>>20, peak>>20, overloadHeapBound>>20)
	}
	if p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, time.Second); err != nil || p.Received != p.Sent {
		t.Fatalf("ping after the flood: %+v, %v", p, err)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Fatal(s.Check())
	}
}
