package gen

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

// wire is a veth pair between two fresh namespaces: tx in a, rx in b, with
// an XDP_PASS program on rx so that it accepts XDP frames.
type wire struct {
	a, b   *testbed.NS
	frame  Frame
	rxName string
}

func newWire(t testing.TB, size int) *wire {
	return newWireWith(t, size, 1, AttachPass)
}

func newWireWith(t testing.TB, size, queues int, attach func(Namespace, string) (io.Closer, error)) *wire {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	w := &wire{rxName: "rx0"}
	var err error
	w.a = testbedtest.NewNS(t, "gena")
	w.b = testbedtest.NewNS(t, "genb")
	// No IPv6 chatter (router solicitations, MLD) in the receiver's counters.
	for _, ns := range []*testbed.NS{w.a, w.b} {
		if err := ns.DisableIPv6(); err != nil {
			t.Fatal(err)
		}
	}
	if err := testbed.Veth(w.a, "tx0", w.b, w.rxName, testbed.VethOpts{MTU: 1500, RxQueues: queues, TxQueues: queues, NoOffloads: true}); err != nil {
		t.Fatal(err)
	}
	pass, err := attach(w.b, w.rxName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	srcMAC, _ := w.a.HWAddr("tx0")
	dstMAC, _ := w.b.HWAddr(w.rxName)
	w.frame, err = BuildFrame(FrameSpec{
		SrcMAC: srcMAC, DstMAC: dstMAC,
		SrcIP: netip.MustParseAddr("192.0.2.2"), DstIP: netip.MustParseAddr("192.0.2.1"),
		SrcPort: 40000, VNI: 42,
		Inner: &FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
			SrcIP: netip.MustParseAddr("10.42.0.1"), DstIP: netip.MustParseAddr("10.42.0.2"),
			SrcPort: 5000, DstPort: 5001,
		},
		Size: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *wire) rxPackets(t testing.TB) uint64 {
	t.Helper()
	var n uint64
	if err := w.b.Do(func() error {
		l, err := netlink.LinkByName(w.rxName)
		if err != nil {
			return err
		}
		n = l.Attrs().Statistics.RxPackets
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// packetSocket opens an AF_PACKET socket on ifname inside ns that receives
// every frame arriving there.
func packetSocket(t testing.TB, ns *testbed.NS, ifname string) int {
	t.Helper()
	var fd int
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("opening packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func TestRunSequence(t *testing.T) {
	w := newWire(t, 128)
	fd := packetSocket(t, w.b, w.rxName)
	const n = 3000
	rx0 := w.rxPackets(t)
	st, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{
		Count: n, SeqOffset: w.frame.SeqOffset, Chunk: 700, // several chunks
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Sent != n {
		t.Errorf("Sent = %d, want %d", st.Sent, n)
	}
	if st.LinkTxDropped != 0 {
		t.Errorf("LinkTxDropped = %d, want 0", st.LinkTxDropped)
	}
	if got := w.rxPackets(t) - rx0; got != n {
		t.Errorf("receiver rx_packets grew by %d, want %d", got, n)
	}
	buf := make([]byte, 2048)
	next := uint64(0)
	for next < n {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("after %d frames: recv: %v", next, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // e.g. the receiver's ICMP port unreachable
		}
		if m != len(w.frame.Data) {
			continue
		}
		seq, _ := Seq(buf[:m], w.frame.SeqOffset)
		if seq != next {
			t.Fatalf("frame %d carries sequence number %d (len %d, type %v)", next, seq, m, from)
		}
		// Apart from the sequence number, the frame is the one given.
		for i := range w.frame.Data {
			if (i < w.frame.SeqOffset || i >= w.frame.SeqOffset+SeqLen) && buf[i] != w.frame.Data[i] {
				t.Fatalf("frame %d byte %d = %#x, want %#x", next, i, buf[i], w.frame.Data[i])
			}
		}
		next++
	}
}

func TestRunFlows(t *testing.T) {
	w := newWire(t, 0)
	fd := packetSocket(t, w.b, w.rxName)
	flows := [][]uint16{{50000, 6000}, {50001, 6001}, {50002, 6002}}
	const n = 30
	_, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{
		Count: n, SeqOffset: w.frame.SeqOffset, FlowOffsets: w.frame.SrcPortOffsets, Flows: flows,
		CPUs: []int{0},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	buf := make([]byte, 2048)
	for i := 0; i < n; {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("after %d frames: recv: %v", i, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); (ok && ll.Pkttype == unix.PACKET_OUTGOING) || m != len(w.frame.Data) {
			continue
		}
		seq, _ := Seq(buf[:m], w.frame.SeqOffset)
		want := flows[seq%uint64(len(flows))]
		for j, off := range w.frame.SrcPortOffsets {
			if got := binary.BigEndian.Uint16(buf[off:]); got != want[j] {
				t.Errorf("seq %d field %d = %d, want %d", seq, j, got, want[j])
			}
		}
		i++
	}
}

func TestRunStopsOnContext(t *testing.T) {
	w := newWire(t, 128)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rx0 := w.rxPackets(t)
	st, err := Run(ctx, w.a, "tx0", w.frame.Data, Options{SeqOffset: w.frame.SeqOffset, Chunk: 4096})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Not necessarily a multiple of the chunk: a test run interrupted by
	// a signal (Go's preemption uses SIGURG) stops mid-chunk and
	// cilium/ebpf starts it again, so one chunk can send more. What must
	// hold is that Run returned once ctx ended, and that every packet it
	// counts went out (below).
	if st.Sent == 0 {
		t.Errorf("Sent = 0, want packets sent before the deadline")
	}
	if got := w.rxPackets(t) - rx0; got != st.Sent-st.LinkTxDropped {
		t.Errorf("receiver got %d, generator sent %d with %d dropped", got, st.Sent, st.LinkTxDropped)
	}
}

func TestRunOptionErrors(t *testing.T) {
	frame := make([]byte, 100)
	for name, o := range map[string]Options{
		"seq past end":    {SeqOffset: 95},
		"batch too big":   {BatchSize: 1000},
		"flows no fields": {Flows: [][]uint16{{1}}},
		"flow arity":      {FlowOffsets: []int{34}, Flows: [][]uint16{{1, 2}}},
		"too many fields": {FlowOffsets: []int{1, 2, 3, 4, 5}},
		"field past end":  {FlowOffsets: []int{99}},
	} {
		if _, err := Run(context.Background(), nil, "lo", frame, o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%s: err = %v, want ErrBadOptions", name, err)
		}
	}
	if _, err := Run(context.Background(), nil, "lo", make([]byte, 10), Options{}); !errors.Is(err, ErrBadOptions) {
		t.Errorf("short frame: err = %v, want ErrBadOptions", err)
	}
}

// BenchmarkRun reports the generator's own rate (Mpps; ns/op is per
// packet) with 128-byte VxLAN frames into a veth whose other end runs XDP
// on the same CPU: "pass" hands every frame to the kernel stack, "drop"
// discards it (the generator's ceiling).
func BenchmarkRun(b *testing.B) {
	for _, c := range []struct {
		name   string
		attach func(Namespace, string) (io.Closer, error)
	}{{"pass", AttachPass}, {"drop", AttachDrop}} {
		b.Run(c.name, func(b *testing.B) {
			w := newWireWith(b, 128, 1, c.attach)
			b.ReportAllocs()
			b.SetBytes(128)
			b.ResetTimer()
			st, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{
				Count: uint64(b.N), SeqOffset: w.frame.SeqOffset,
			})
			if err != nil {
				b.Fatal(err)
			}
			if st.Sent != uint64(b.N) {
				b.Fatalf("sent %d, want %d", st.Sent, b.N)
			}
			b.ReportMetric(st.Mpps(), "Mpps")
			b.ReportMetric(float64(st.LinkTxDropped)/float64(max(st.Sent, 1)), "dropped/pkt")
		})
	}
}

// TestRunThreads runs one generator thread per CPU on a two-queue wire:
// every sequence number in [0, n) arrives exactly once.
func TestRunThreads(t *testing.T) {
	w := newWireWith(t, 128, 2, AttachPass)
	fd := packetSocket(t, w.b, w.rxName)
	cpus := []int{0, 1}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil || !set.IsSet(0) || !set.IsSet(1) {
		t.Skip("needs CPUs 0 and 1")
	}
	const n = 4000
	st, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{
		Count: n, SeqOffset: w.frame.SeqOffset, CPUs: cpus, Chunk: 300,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// One rx queue per generating CPU: nothing should be refused, but the
	// machine is shared, so tolerate drops as long as they are accounted.
	if st.Sent != n || st.LinkTxPackets+st.LinkTxDropped != n {
		t.Errorf("Sent %d, link tx %d + dropped %d; want %d", st.Sent, st.LinkTxPackets, st.LinkTxDropped, n)
	}
	if st.LinkTxDropped > 0 {
		t.Logf("%d frames refused by the veth", st.LinkTxDropped)
	}
	seen := make([]bool, n)
	buf := make([]byte, 2048)
	for got := uint64(0); got < st.LinkTxPackets; {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("after %d frames: recv: %v", got, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); (ok && ll.Pkttype == unix.PACKET_OUTGOING) || m != len(w.frame.Data) {
			continue
		}
		seq, _ := Seq(buf[:m], w.frame.SeqOffset)
		if seq >= n || seen[seq] {
			t.Fatalf("sequence number %d out of range or repeated", seq)
		}
		seen[seq] = true
		got++
	}
}

// TestRunWithoutNAPI: a veth whose other end runs neither XDP nor GRO
// silently discards XDP frames; Run says so.
func TestRunWithoutNAPI(t *testing.T) {
	w := newWireWith(t, 128, 1, func(Namespace, string) (io.Closer, error) { return io.NopCloser(nil), nil })
	st, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{Count: 100, SeqOffset: w.frame.SeqOffset})
	if !errors.Is(err, ErrNothingTransmitted) {
		t.Errorf("Run = %+v, %v; want ErrNothingTransmitted", st, err)
	}
	if st.Sent != 100 {
		t.Errorf("Sent %d, want 100", st.Sent)
	}
}

// TestRunRate: a paced run never goes faster than asked (the lower bound
// on its duration follows from the pacing; no upper bound is asserted on
// this shared machine).
func TestRunRate(t *testing.T) {
	w := newWire(t, 128)
	const n, rate = 10000, 50000.0
	st, err := Run(context.Background(), w.a, "tx0", w.frame.Data, Options{Count: n, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != n {
		t.Errorf("Sent %d, want %d", st.Sent, n)
	}
	// The last chunk (1 ms worth) may leave right at its due time.
	if min := time.Duration(float64(n-rate/1000) / rate * float64(time.Second)); st.Duration < min {
		t.Errorf("run took %v, want at least %v at %g pps", st.Duration, min, rate)
	}
}
