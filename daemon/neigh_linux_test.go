package daemon

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

// neighBed is a namespace with an uplink "up0" (192.0.2.1/24, its veth
// peer "up1") and a bridge "br0" with a port "p0" (peer "p1"), and the
// daemon's neighbour resolver on up0, wanting VTEP 192.0.2.2.
type neighBed struct {
	ns   *testbed.NS
	n    *neighbours
	vtep [4]byte
}

func newNeighBed(t *testing.T) *neighBed {
	t.Helper()
	ns := testbedtest.NewNS(t, "mfnb")
	if err := testbed.Veth(ns, "up0", ns, "up1", testbed.VethOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := ns.AddAddr("up0", "192.0.2.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := ns.AddBridge("br0", 1500); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Veth(ns, "p0", ns, "p1", testbed.VethOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetMaster("p0", "br0"); err != nil {
		t.Fatal(err)
	}
	idx, err := ns.LinkIndex("up0")
	if err != nil {
		t.Fatal(err)
	}
	b := &neighBed{ns: ns, vtep: [4]byte{192, 0, 2, 2}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := ns.Do(func() error {
		var err error
		b.n, err = newNeighbours(idx, ns.Do, log)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.n.close)
	b.setMAC(t, 1)
	if missing := b.n.resolve([][4]byte{b.vtep}, 2*time.Second); len(missing) != 0 {
		t.Fatalf("VTEP not resolved: %v", missing)
	}
	b.waitMAC(t, 1, time.Second)
	return b
}

func peerMAC(i byte) net.HardwareAddr { return net.HardwareAddr{2, 0xee, 0, 0, 0, i} }

// setMAC makes the kernel's entry of the VTEP say peerMAC(i).
func (b *neighBed) setMAC(t *testing.T, i byte) {
	t.Helper()
	if err := b.ns.AddNeigh("up0", net.IP(b.vtep[:]), peerMAC(i)); err != nil {
		t.Fatal(err)
	}
}

// waitMAC waits until the resolver's map says peerMAC(i) for the VTEP.
func (b *neighBed) waitMAC(t *testing.T, i byte, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		mac, ok := b.n.lookup(b.vtep)
		if ok && net.HardwareAddr(mac[:]).String() == peerMAC(i).String() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the map says %v (%v), want %v: a notification was missed", within, net.HardwareAddr(mac[:]), ok, peerMAC(i))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNeighboursOverrun: after the kernel reports lost notifications
// (ENOBUFS, injected), the resolver counts the overrun, resubscribes and
// re-reads the table, and later changes are seen again. Nothing else
// refreshes the map in this test.
func TestNeighboursOverrun(t *testing.T) {
	b := newNeighBed(t)
	// inject hands err to the watcher and waits until it resubscribed.
	inject := func(err error, resubscriptions uint64) {
		t.Helper()
		b.n.inject <- err
		deadline := time.Now().Add(2 * time.Second)
		for b.n.resubscribed.Load() < resubscriptions && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	inject(unix.ENOBUFS, 1)
	if o, r := b.n.overruns.Load(), b.n.resubscribed.Load(); o != 1 || r != 1 {
		t.Fatalf("%d overruns, %d resubscriptions after one injected ENOBUFS; want 1, 1", o, r)
	}
	for i := byte(2); i < 5; i++ {
		b.setMAC(t, i)
		b.waitMAC(t, i, 2*time.Second)
	}
	// Any other error resubscribes too, without counting an overrun.
	inject(unix.EIO, 2)
	if o, r := b.n.overruns.Load(), b.n.resubscribed.Load(); o != 1 || r != 2 {
		t.Fatalf("%d overruns, %d resubscriptions after an injected EIO; want 1, 2", o, r)
	}
	b.setMAC(t, 9)
	b.waitMAC(t, 9, 2*time.Second)
}

// TestNeighboursBridgeFlood: a burst of bridge FDB notifications (what a
// bridge emits for every MAC it learns) neither overruns the subscription
// nor hides a change of the uplink's neighbour that follows it.
func TestNeighboursBridgeFlood(t *testing.T) {
	b := newNeighBed(t)
	port, err := b.ns.LinkIndex("p0")
	if err != nil {
		t.Fatal(err)
	}
	const macs = 5000
	if err := b.ns.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		for i := range macs {
			e := &netlink.Neigh{LinkIndex: port, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER, State: unix.NUD_NOARP,
				HardwareAddr: net.HardwareAddr{2, 0xbb, 0, byte(i >> 16), byte(i >> 8), byte(i)}}
			if err := h.NeighAdd(e); err != nil {
				return fmt.Errorf("bridge fdb entry %d: %w", i, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.setMAC(t, 2)
	b.waitMAC(t, 2, 2*time.Second)
	if o := b.n.overruns.Load(); o != 0 {
		t.Errorf("%d overruns from bridge FDB messages the subscription should not receive", o)
	}
}

// FuzzRelevantMessages: any datagram the subscription could deliver is
// classified without a panic, and a well-formed IPv4 notification of the
// uplink is relevant.
func FuzzRelevantMessages(f *testing.F) {
	n := &neighbours{ifindex: 7}
	msg := func(typ uint16, family uint8, ifindex int32) []byte {
		b := make([]byte, unix.NLMSG_HDRLEN+12)
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		b[unix.NLMSG_HDRLEN] = family
		binary.NativeEndian.PutUint32(b[unix.NLMSG_HDRLEN+4:], uint32(ifindex))
		return b
	}
	good := msg(unix.RTM_NEWNEIGH, unix.AF_INET, 7)
	f.Add(good)
	f.Add(msg(unix.RTM_DELNEIGH, unix.AF_BRIDGE, 7))
	f.Add(msg(unix.RTM_NEWNEIGH, unix.AF_INET, 8))
	f.Add(append(msg(unix.RTM_NEWNEIGH, unix.AF_INET6, 7), good...))
	f.Add([]byte{})
	if !n.relevantMessages(good) {
		f.Fatal("an IPv4 notification of the uplink is not relevant")
	}
	if n.relevantMessages(msg(unix.RTM_NEWNEIGH, unix.AF_BRIDGE, 7)) || n.relevantMessages(msg(unix.RTM_NEWNEIGH, unix.AF_INET, 8)) {
		f.Fatal("a bridge or other-link notification is relevant")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n.relevantMessages(b)
	})
}
