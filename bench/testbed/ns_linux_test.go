package testbed_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

func currentNS(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatalf("reading own namespace: %v", err)
	}
	return s
}

func TestNSLifecycle(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	before := currentNS(t)
	ns, err := testbed.NewNS("tbtest")
	if err != nil {
		t.Fatalf("NewNS: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	if !strings.HasPrefix(ns.Name, "tbtest-") || len(ns.Name) != len("tbtest-")+6 {
		t.Errorf("Name = %q, want tbtest-<6 chars>", ns.Name)
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		t.Errorf("named namespace file: %v", err)
	}
	if got := currentNS(t); got != before {
		t.Errorf("caller's namespace changed: %s -> %s", before, got)
	}
	// Do runs inside the namespace: its own identity differs from ours and
	// equals the bind-mounted one.
	var inside string
	if err := ns.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	h, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatalf("opening %s: %v", ns.Path(), err)
	}
	want := h.UniqueId()
	h.Close()
	if inside == before {
		t.Errorf("Do ran in the caller's namespace %s", inside)
	}
	if !strings.Contains(want, strings.Trim(strings.TrimPrefix(inside, "net:"), "[]")) {
		t.Errorf("Do ran in %s, namespace file is %s", inside, want)
	}
	// loopback is up.
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if ifi.Flags&net.FlagUp == 0 {
			t.Errorf("lo is down")
		}
		return nil
	}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	// An error from fn comes back unchanged.
	sentinel := errors.New("sentinel")
	if err := ns.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do error = %v, want sentinel", err)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v, want not exist", ns.Path(), err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, testbed.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if err := ns.SetUp("lo"); !errors.Is(err, testbed.ErrClosed) {
		t.Errorf("SetUp after Close = %v, want ErrClosed", err)
	}
	if got := currentNS(t); got != before {
		t.Errorf("caller's namespace changed: %s -> %s", before, got)
	}
}

func TestDoPanicPropagates(t *testing.T) {
	ns := testbedtest.NewNS(t, "tbpanic")
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want boom", r)
		}
	}()
	ns.Do(func() error { panic("boom") })
	t.Errorf("Do returned after panic")
}

func TestVethUDP(t *testing.T) {
	a := testbedtest.NewNS(t, "tba")
	b := testbedtest.NewNS(t, "tbb")
	if err := testbed.Veth(a, "wa", b, "wb", testbed.VethOpts{MTU: 1400, RxQueues: 2, TxQueues: 2, NoOffloads: true}); err != nil {
		t.Fatalf("Veth: %v", err)
	}
	for _, end := range []struct {
		ns   *testbed.NS
		name string
	}{{a, "wa"}, {b, "wb"}} {
		l, err := end.ns.Link(end.name)
		if err != nil {
			t.Fatalf("Link: %v", err)
		}
		if l.Attrs().MTU != 1400 || l.Attrs().NumRxQueues != 2 || l.Attrs().NumTxQueues != 2 {
			t.Errorf("%s: mtu %d rxq %d txq %d, want 1400 2 2", end.name, l.Attrs().MTU, l.Attrs().NumRxQueues, l.Attrs().NumTxQueues)
		}
		o, err := end.ns.GetOffloads(end.name)
		if err != nil {
			t.Fatalf("GetOffloads: %v", err)
		}
		if o != (testbed.Offloads{}) {
			t.Errorf("%s offloads %+v, want all off", end.name, o)
		}
	}
	if err := b.SetOffloads("wb", testbed.Offloads{GRO: true}); err != nil {
		t.Fatalf("SetOffloads: %v", err)
	}
	if o, _ := b.GetOffloads("wb"); o != (testbed.Offloads{GRO: true}) {
		t.Errorf("offloads %+v, want GRO only", o)
	}
	if err := a.AddAddr("wa", "192.0.2.2/24"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("wb", "192.0.2.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("wa", "not-an-address"); err == nil {
		t.Errorf("AddAddr accepted a bad address")
	}
	macB, err := b.HWAddr("wb")
	if err != nil {
		t.Fatal(err)
	}
	if len(macB) != 6 {
		t.Fatalf("HWAddr = %v", macB)
	}
	idx, err := a.LinkIndex("wa")
	if err != nil || idx <= 1 {
		t.Fatalf("LinkIndex = %d, %v", idx, err)
	}
	if _, err := a.LinkIndex("nosuch"); err == nil {
		t.Errorf("LinkIndex of a missing link succeeded")
	}
	// Permanent neighbour: no ARP needed from a to b.
	if err := a.AddNeigh("wa", net.ParseIP("192.0.2.1"), macB); err != nil {
		t.Fatal(err)
	}
	var srv *net.UDPConn
	if err := b.Do(func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 9999})
		return err
	}); err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	defer srv.Close()
	var cli *net.UDPConn
	if err := a.Do(func() error {
		var err error
		cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 9999})
		return err
	}); err != nil {
		t.Fatalf("dial in a: %v", err)
	}
	defer cli.Close()
	// The socket keeps its namespace when used from this goroutine.
	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := srv.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("read in b: %v", err)
	}
	if string(buf[:n]) != "hello" || !from.IP.Equal(net.ParseIP("192.0.2.2")) {
		t.Errorf("got %q from %v, want hello from 192.0.2.2", buf[:n], from)
	}
}

func TestSysctlPerNamespace(t *testing.T) {
	a := testbedtest.NewNS(t, "tbsa")
	b := testbedtest.NewNS(t, "tbsb")
	if err := a.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Sysctl("net/ipv4/ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.GetSysctl("net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Errorf("a: ip_forward = %q, %v, want 1", v, err)
	}
	if v, err := b.GetSysctl("net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Errorf("b: ip_forward = %q, %v, want 0", v, err)
	}
	if err := a.DisableIPv6(); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.GetSysctl("net.ipv6.conf.lo.disable_ipv6"); v != "1" {
		t.Errorf("lo disable_ipv6 = %q, want 1", v)
	}
	if v, _ := b.GetSysctl("net.ipv6.conf.lo.disable_ipv6"); v != "0" {
		t.Errorf("other namespace's lo disable_ipv6 = %q, want 0", v)
	}
}

func TestRPS(t *testing.T) {
	a := testbedtest.NewNS(t, "tbra")
	b := testbedtest.NewNS(t, "tbrb")
	if err := testbed.Veth(a, "ra", b, "rb", testbed.VethOpts{RxQueues: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRPS("ra", 1, "1"); err != nil {
		t.Fatalf("SetRPS: %v", err)
	}
	if v, err := a.RPS("ra", 1); err != nil || strings.TrimLeft(strings.ReplaceAll(v, ",", ""), "0") != "1" {
		t.Errorf("RPS(ra, 1) = %q, %v, want mask 1", v, err)
	}
	if v, err := a.RPS("ra", 0); err != nil || strings.Trim(strings.ReplaceAll(v, ",", ""), "0") != "" {
		t.Errorf("RPS(ra, 0) = %q, %v, want 0", v, err)
	}
	// The other end, in the other namespace, is untouched, and the root
	// namespace's view of /sys has no ra.
	if v, err := b.RPS("rb", 1); err != nil || strings.Trim(strings.ReplaceAll(v, ",", ""), "0") != "" {
		t.Errorf("RPS(rb, 1) = %q, %v, want 0", v, err)
	}
	if _, err := os.Stat("/sys/class/net/ra"); err == nil {
		t.Errorf("/sys/class/net/ra visible from the caller's namespace")
	}
	if err := a.SetRPS("nosuch", 0, "1"); err == nil {
		t.Errorf("SetRPS on a missing link succeeded")
	}
	if got := currentNS(t); got == "" {
		t.Fatal("lost own namespace")
	}
}

// TestNoThreadLeftInNamespace runs many Do calls (and sysfs accesses, whose
// threads are discarded) concurrently, then checks that every thread of the
// process is back in the test's namespace.
func TestNoThreadLeftInNamespace(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	own := currentNS(t)
	ns := testbedtest.NewNS(t, "tbthr")
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%8 == 0 {
				ns.RPS("lo", 0) // lo has no rx queues in sysfs: error is fine
				return
			}
			ns.Do(func() error {
				time.Sleep(time.Millisecond)
				if i%2 == 0 {
					return errors.New("odd")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	// Threads of doSysfs die just after reporting their result: poll until
	// they are gone; a thread left behind in the namespace stays.
	var stray []string
	for try := 0; try < 50; try++ {
		stray = stray[:0]
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			link, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
			if err != nil {
				continue // thread exited meanwhile
			}
			if link != own {
				stray = append(stray, task.Name()+" in "+link)
			}
		}
		if len(stray) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("threads outside the test's namespace %s: %v", own, stray)
}

// TestCloseDuringDo: Close from another goroutine while Do runs; the
// running function completes, later calls fail with ErrClosed.
func TestCloseDuringDo(t *testing.T) {
	ns := testbedtest.NewNS(t, "tbcd")
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- ns.Do(func() error {
			close(inside)
			<-release
			_, err := net.InterfaceByName("lo")
			return err
		})
	}()
	<-inside
	if err := ns.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("Do running across Close: %v", err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, testbed.ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Close: %v", ns.Path(), err)
	}
}

func TestListRemoveNamed(t *testing.T) {
	ns := testbedtest.NewNS(t, "tbstale")
	names, err := testbed.ListNamed("tbstale-")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == ns.Name
	}
	if !found {
		t.Fatalf("ListNamed = %v, missing %s", names, ns.Name)
	}
	if err := testbed.RemoveNamed(ns.Name); err != nil {
		t.Fatalf("RemoveNamed: %v", err)
	}
	if _, err := os.Stat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveNamed: %v", err)
	}
	// Close of the removed namespace still succeeds.
	if err := ns.Close(); err != nil {
		t.Errorf("Close after RemoveNamed: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if err := testbed.RemoveNamed(bad); err == nil {
			t.Errorf("RemoveNamed(%q) succeeded", bad)
		}
	}
}
