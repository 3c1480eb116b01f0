package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

func buildTest(t *testing.T, o testbed.Options) *testbed.Topology {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	topo, err := testbed.Build(context.Background(), o)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return topo
}

// listenUDP opens a UDP socket bound to ip:port inside ns.
func listenUDP(t *testing.T, ns *testbed.NS, ip net.IP, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: port})
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg from a to b's address until b receives it (the first
// datagrams may wait on ARP across the overlay), and returns the sender
// address b saw.
func exchange(t *testing.T, a, b *net.UDPConn, msg string) *net.UDPAddr {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 2048)
	dst := b.LocalAddr().(*net.UDPAddr)
	for time.Now().Before(deadline) {
		if _, err := a.WriteToUDP([]byte(msg), dst); err != nil {
			t.Fatalf("sending to %v: %v", dst, err)
		}
		b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := b.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if string(buf[:n]) == msg {
			return from
		}
	}
	t.Fatalf("%v never received %q from %v", dst, msg, a.LocalAddr())
	return nil
}

func TestBuildKernelVxLAN(t *testing.T) {
	topo := buildTest(t, testbed.Options{Prefix: "tbk", HostVxLAN: true})

	// Underlay: MTU 1500, offloads off on both wire ends.
	for _, end := range []struct {
		ns   *testbed.NS
		name string
	}{{topo.Peer, testbed.PeerWire}, {topo.Host, testbed.HostUplink}} {
		l, err := end.ns.Link(end.name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().MTU != testbed.WireMTU {
			t.Errorf("%s MTU %d, want %d", end.name, l.Attrs().MTU, testbed.WireMTU)
		}
		if o, err := end.ns.GetOffloads(end.name); err != nil || o != (testbed.Offloads{}) {
			t.Errorf("%s offloads %+v, %v; want all off", end.name, o, err)
		}
	}
	// Devices where docs/ARCHITECTURE.md §8 puts them.
	for _, c := range []struct {
		ns           *testbed.NS
		link, master string
		mtu          int
	}{
		{topo.Host, testbed.VxLANDev, testbed.Bridge, testbed.OverlayMTU},
		{topo.Host, testbed.HostCtrVeth, testbed.Bridge, testbed.OverlayMTU},
		{topo.Peer, testbed.VxLANDev, "", testbed.OverlayMTU},
		{topo.Ctr, testbed.CtrDev, "", testbed.OverlayMTU},
	} {
		m, err := c.ns.Master(c.link)
		if err != nil {
			t.Fatal(err)
		}
		if m != c.master {
			t.Errorf("%s/%s master %q, want %q", c.ns.Name, c.link, m, c.master)
		}
		l, _ := c.ns.Link(c.link)
		if l.Attrs().MTU != c.mtu {
			t.Errorf("%s/%s MTU %d, want %d", c.ns.Name, c.link, l.Attrs().MTU, c.mtu)
		}
	}
	l, _ := topo.Peer.Link(testbed.VxLANDev)
	vx, ok := l.(*netlink.Vxlan)
	if !ok || vx.VxlanId != testbed.VNI || vx.Port != testbed.VxLANPort || !vx.SrcAddr.Equal(testbed.PeerUnderlayIP) || !vx.Learning {
		t.Errorf("peer vxlan: %+v", l)
	}
	fdb, err := topo.Peer.FDB(testbed.VxLANDev)
	if err != nil {
		t.Fatal(err)
	}
	flood := false
	for _, n := range fdb {
		if n.HardwareAddr.String() == "00:00:00:00:00:00" && n.IP.Equal(testbed.HostUnderlayIP) {
			flood = true
		}
	}
	if !flood {
		t.Errorf("peer FDB has no all-zero entry to %v: %v", testbed.HostUnderlayIP, fdb)
	}

	// Overlay both ways: ctr -> peer, then peer -> ctr.
	peer := listenUDP(t, topo.Peer, testbed.PeerOverlayIP, 7001)
	ctr := listenUDP(t, topo.Ctr, testbed.CtrOverlayIP, 7002)
	if from := exchange(t, ctr, peer, "ctr to peer"); !from.IP.Equal(testbed.CtrOverlayIP) || from.Port != 7002 {
		t.Errorf("peer saw sender %v, want %v:7002", from, testbed.CtrOverlayIP)
	}
	if from := exchange(t, peer, ctr, "peer to ctr"); !from.IP.Equal(testbed.PeerOverlayIP) {
		t.Errorf("ctr saw sender %v, want %v", from, testbed.PeerOverlayIP)
	}
	// A full-MTU datagram (1450 - 28 bytes of UDP payload) crosses unfragmented.
	big := string(make([]byte, testbed.OverlayMTU-28))
	exchange(t, ctr, peer, big)

	// The traffic did cross the wire as VxLAN: the host's vxlan42 counted it.
	hl, _ := topo.Host.Link(testbed.VxLANDev)
	if s := hl.Attrs().Statistics; s == nil || s.RxPackets == 0 || s.TxPackets == 0 {
		t.Errorf("host vxlan42 statistics %+v, want traffic both ways", s)
	}
}

func TestBuildMflowMode(t *testing.T) {
	topo := buildTest(t, testbed.Options{Prefix: "tbm", WireQueues: 2})
	if _, err := topo.Host.Link(testbed.VxLANDev); err == nil {
		t.Errorf("host has %s without HostVxLAN", testbed.VxLANDev)
	}
	l, err := topo.Host.Link(testbed.HostUplink)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().NumRxQueues != 2 || l.Attrs().NumTxQueues != 2 {
		t.Errorf("uplink queues rx %d tx %d, want 2 2", l.Attrs().NumRxQueues, l.Attrs().NumTxQueues)
	}
	// Stand-in for mflow's TAP: a persistent TAP made in host (the tun
	// device binds to the namespace of the thread that opens /dev/net/tun).
	if err := topo.Host.Do(func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "mflow42"
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI})
	}); err != nil {
		t.Fatalf("creating TAP: %v", err)
	}
	if err := topo.AttachToBridge("mflow42"); err != nil {
		t.Fatalf("AttachToBridge: %v", err)
	}
	if m, _ := topo.Host.Master("mflow42"); m != testbed.Bridge {
		t.Errorf("mflow42 master %q, want %s", m, testbed.Bridge)
	}
	if l, _ := topo.Host.Link("mflow42"); l.Attrs().MTU != testbed.OverlayMTU || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("mflow42 MTU %d flags %v, want %d and up", l.Attrs().MTU, l.Attrs().Flags, testbed.OverlayMTU)
	}
	// The underlay works without any VxLAN in host: plain UDP peer -> host.
	host := listenUDP(t, topo.Host, testbed.HostUnderlayIP, 7003)
	peer := listenUDP(t, topo.Peer, testbed.PeerUnderlayIP, 7004)
	exchange(t, peer, host, "underlay")
	// RPS on the host's uplink queue (the kernel-rps baseline's knob).
	if err := topo.Host.SetRPS(testbed.HostUplink, 1, "1"); err != nil {
		t.Fatalf("SetRPS: %v", err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	topo, err := testbed.Build(context.Background(), testbed.Options{Prefix: "tbc", HostVxLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	names := topo.Namespaces()
	if len(names) != 3 {
		t.Fatalf("%d namespaces, want 3", len(names))
	}
	// Close from several goroutines at once (a signal handler and a defer).
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = topo.Close() }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(testbed.NetnsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		for _, e := range entries {
			if e.Name() == ns.Name {
				t.Errorf("namespace %s still in %s", ns.Name, testbed.NetnsDir)
			}
		}
		if err := ns.SetUp("lo"); !errors.Is(err, testbed.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", ns.Name, err)
		}
	}
}

func TestBuildCanceled(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	before, _ := os.ReadDir(testbed.NetnsDir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := testbed.Build(ctx, testbed.Options{Prefix: "tbx"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build with canceled context: %v", err)
	}
	after, _ := os.ReadDir(testbed.NetnsDir)
	if len(after) != len(before) {
		t.Errorf("%s has %d entries after a canceled Build, had %d", testbed.NetnsDir, len(after), len(before))
	}
}

// ExampleBuild shows the kernel baseline; it is compiled, not run (root).
func ExampleBuild() {
	topo, err := testbed.Build(context.Background(), testbed.Options{HostVxLAN: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer topo.Close()
	_ = topo.Ctr.Do(func() error {
		c, err := net.Dial("udp4", "10.42.0.1:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
}
