package traffic

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

func TestSeq(t *testing.T) {
	var s Seq
	for _, n := range []uint64{0, 1, 3, 2, 2, 5, 4, 4, 6, 200} {
		s.Add(n)
	}
	if s.Received != 8 || s.OutOfOrder != 2 || s.Duplicates != 2 || s.Jumps != 2 {
		t.Fatalf("got received %d out-of-order %d duplicates %d jumps %d, want 8 2 2 2", s.Received, s.OutOfOrder, s.Duplicates, s.Jumps)
	}
	// One late run of three is one jump and three out-of-order numbers.
	var r Seq
	for _, n := range []uint64{0, 4, 1, 2, 3, 5} {
		r.Add(n)
	}
	if r.OutOfOrder != 3 || r.Jumps != 1 {
		t.Fatalf("late run: out-of-order %d jumps %d, want 3 1", r.OutOfOrder, r.Jumps)
	}
	if l := s.Lost(201); l != 193 {
		t.Fatalf("Lost(201) = %d, want 193", l)
	}
}

func TestSummarise(t *testing.T) {
	var d []time.Duration
	for i := 1000; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	l := summarise(d)
	if l.Samples != 1000 || l.P50 != 500*time.Microsecond || l.P99 != 990*time.Microsecond || l.Max != time.Millisecond {
		t.Fatalf("summarise: %+v", l)
	}
	if (summarise(nil) != Latency{}) {
		t.Fatal("empty summary not zero")
	}
}

// TestGeneratorsOverVeth runs every generator between two namespaces joined
// by a plain veth pair: the generators themselves must see no loss, no
// reordering and a verified TCP stream on a path that has none.
func TestGeneratorsOverVeth(t *testing.T) {
	a := testbedtest.NewNS(t, "mft-a")
	b := testbedtest.NewNS(t, "mft-b")
	if err := testbed.Veth(a, "va", b, "vb", testbed.VethOpts{}); err != nil {
		t.Fatal(err)
	}
	// With GRO on, the receiving veth queues through NAPI (one ring);
	// without it, each packet goes to the backlog of the CPU the sender
	// happens to run on, and a sender that migrates between CPUs sees
	// its datagrams reordered by the kernel.
	if err := b.SetOffloads("vb", testbed.Offloads{TSO: true, GSO: true, GRO: true, TxCsum: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("va", "10.42.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("vb", "10.42.0.2/24"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dst := netip.MustParseAddr("10.42.0.2")

	p, err := Ping(ctx, a, dst, 3, 10*time.Millisecond, time.Second)
	if err != nil || p.Sent != 3 || p.Received != 3 || p.RTT.P50 <= 0 {
		t.Fatalf("Ping: %+v, %v", p, err)
	}
	tr, err := TCPStream(ctx, a, b, dst, 5*time.Second, 8<<20)
	if err != nil || !tr.Verified || tr.Bytes != 8<<20 {
		t.Fatalf("TCPStream: %+v, %v", tr, err)
	}
	u, err := UDPStream(ctx, a, b, dst, UDPOptions{Size: 200, Duration: 300 * time.Millisecond, Rate: 5000})
	if err != nil || u.Sent == 0 || u.Received != u.Sent || u.OutOfOrder != 0 || u.Duplicates != 0 {
		t.Fatalf("UDPStream: %+v, %v (%s)", u, err, vethDrops(a, "va", b, "vb"))
	}
	lat, lost, err := UDPLatency(ctx, a, b, dst, 20, time.Millisecond, time.Second)
	if err != nil || lost != 0 || lat.Samples != 20 {
		t.Fatalf("UDPLatency: %+v lost %d, %v (%s)", lat, lost, err, vethDrops(a, "va", b, "vb"))
	}
}

// vethDrops describes the kernel's drop counters of both ends of the veth,
// so that a failure says whether the kernel dropped frames (and where) or
// the generator lost count.
func vethDrops(a *testbed.NS, aLink string, b *testbed.NS, bLink string) string {
	var out []string
	for _, e := range []struct {
		ns   *testbed.NS
		link string
	}{{a, aLink}, {b, bLink}} {
		l, err := e.ns.Link(e.link)
		if err != nil || l.Attrs().Statistics == nil {
			out = append(out, fmt.Sprintf("%s: no statistics (%v)", e.link, err))
			continue
		}
		s := l.Attrs().Statistics
		out = append(out, fmt.Sprintf("%s rx_dropped=%d tx_dropped=%d", e.link, s.RxDropped, s.TxDropped))
	}
	return "kernel: " + strings.Join(out, ", ")
}
