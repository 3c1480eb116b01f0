package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"mflow/batch"
	"mflow/bench/gen"
	"mflow/config"
	"mflow/dataplane"
	"mflow/metrics"
	"mflow/steer"
	"mflow/tap"
	"mflow/vxlan"
	"mflow/xsk"
	"mflow/xsk/xsktest"
)

// The daemon's receive-side packet logic without root: an in-memory AF_XDP
// socket (xsktest) as the source, the daemon's own network stage and
// device sink, fake devices as the networks' TAPs.

var (
	testPeer     = netip.MustParseAddr("192.0.2.2")
	testVTEP     = netip.MustParseAddr("192.0.2.1")
	testStranger = netip.MustParseAddr("192.0.2.9")
)

// fakeDevice records what the sink writes; with refuse > 0 it refuses
// every refuse-th frame, as a kernel may refuse a TAP write, and counts it
// in WriteErrors.
type fakeDevice struct {
	name   string
	refuse int
	mu     sync.Mutex
	seen   int
	got    [][]byte // inner frames written, copied
	stats  tap.Stats
}

func (f *fakeDevice) Name() string { return f.name }
func (f *fakeDevice) WriteFrames(frames [][]byte, off int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, fr := range frames {
		f.seen++
		if f.refuse > 0 && f.seen%f.refuse == 0 {
			f.stats.WriteErrors++
			continue
		}
		f.got = append(f.got, append([]byte(nil), fr[off:]...))
		f.stats.WritePackets++
		n++
	}
	return n, nil
}
func (f *fakeDevice) Read([][]byte, []int, int) (int, error) { return 0, nil }
func (f *fakeDevice) Stats() tap.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}
func (f *fakeDevice) KernelDrops() uint64      { return 0 }
func (f *fakeDevice) WriteErrorReason() string { return "fake_write_error" }
func (f *fakeDevice) Close() error             { return nil }

func (f *fakeDevice) frames() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

// testDaemon is a Daemon with networks 42 and 43 (peer testPeer) on fake
// devices, wired as Run wires one queue's engine.
func testDaemon() (*daemon, []*fakeDevice) {
	d := &daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	devs := []*fakeDevice{{name: "mflow42"}, {name: "mflow43"}}
	byVNI := map[uint32]*network{}
	for i, vni := range []uint32{42, 43} {
		n := newNetwork(vni, i, devs[i].name, []netip.Addr{testPeer})
		d.nets = append(d.nets, n)
		byVNI[vni] = n
		d.devs = append(d.devs, devs[i])
	}
	d.devMu = make([]sync.Mutex, len(d.nets))
	d.stage = &networkStage{networks: byVNI, fdb: &d.fdb, clock: func() int64 { return 1 }}
	return d, devs
}

// vxlanFrame is a VxLAN frame from src for vni whose inner frame comes
// from MAC innerSrc and carries tag in its UDP payload; it returns the
// frame and its inner frame.
func vxlanFrame(t *testing.T, src netip.Addr, vni uint32, innerSrc net.HardwareAddr, tag byte) ([]byte, []byte) {
	t.Helper()
	inner := &gen.FrameSpec{SrcMAC: innerSrc, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xc}, SrcIP: netip.MustParseAddr("10.42.0.1"),
		DstIP: netip.MustParseAddr("10.42.0.2"), SrcPort: 5000, DstPort: 7000}
	f, err := gen.BuildFrame(gen.FrameSpec{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: src, DstIP: testVTEP, SrcPort: 49152, VNI: vni, Inner: inner, Size: 14 + 20 + 8 + 8 + 14 + 20 + 8 + 32})
	if err != nil {
		t.Fatal(err)
	}
	f.Data[len(f.Data)-1] = tag
	off := vxlan.InnerOffset(f.Data)
	return f.Data, f.Data[off:]
}

// TestNetworkStage: the VNI and peer policy, FDB learning, and where the
// inner frame is (Out, Offset, Net) for the sink.
func TestNetworkStage(t *testing.T) {
	d, _ := testDaemon()
	macA := net.HardwareAddr{2, 0xa, 0, 0, 0, 1}
	type tc struct {
		frame, inner []byte
		want         vxlan.Reason
		net          int32
	}
	var cases []tc
	add := func(src netip.Addr, vni uint32, want vxlan.Reason, net int32, tag byte) {
		f, in := vxlanFrame(t, src, vni, macA, tag)
		cases = append(cases, tc{f, in, want, net})
	}
	add(testPeer, 42, vxlan.Deliver, 0, 1)
	add(testPeer, 43, vxlan.Deliver, 1, 2)
	add(testPeer, 100, vxlan.DropUnknownVNI, -1, 3)
	add(testStranger, 42, vxlan.DropPeer, -1, 4)
	cases = append(cases, tc{frame: make([]byte, 10), want: vxlan.DropShort, net: -1})
	b := batch.NewBatch(len(cases))
	for i, c := range cases {
		b.Frames[i] = c.frame
	}
	b.N = len(cases)
	b.Begin()
	d.stage.Process(b)
	for i, c := range cases {
		if b.Reason[i] != c.want || b.Net[i] != c.net {
			t.Errorf("frame %d: reason %v net %d, want %v %d", i, b.Reason[i], b.Net[i], c.want, c.net)
			continue
		}
		if c.want != vxlan.Deliver {
			continue
		}
		off := int(b.Offset[i])
		if !bytes.Equal(b.Out[i], c.inner) || !bytes.Equal(b.Frames[i][off:off+len(b.Out[i])], c.inner) {
			t.Errorf("frame %d: Out or Offset %d does not give the inner frame", i, off)
		}
	}
	// The peer's inner source MAC was learned for both networks, the
	// stranger's not at all.
	for _, vni := range []uint32{42, 43} {
		if r, ok := d.fdb.Lookup(vni, [6]byte(macA)); !ok || r != testPeer.As4() {
			t.Errorf("VNI %d: FDB has %v, %v; want %v learned", vni, r, ok, testPeer)
		}
	}
	if _, ok := d.fdb.Lookup(100, [6]byte(macA)); ok {
		t.Error("a MAC was learned for an unknown VNI")
	}
}

// TestReceivePathWithFakes runs one queue's engine as Run builds it (the
// xsk source, the network stage, the device sink) over an in-memory socket:
// every frame is delivered to its network's device or dropped under its
// reason, in order per device, with the virtio headroom before it, and
// every UMEM frame comes back (the accounting balances).
func TestReceivePathWithFakes(t *testing.T) {
	for _, pol := range []steer.Policy{steer.Single, steer.Microflow} {
		t.Run(pol.String(), func(t *testing.T) {
			d, devs := testDaemon()
			devs[1].refuse = 7
			q, err := xsktest.New(xsk.Options{NumFrames: 256, FillSize: 128, RxSize: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			q.Fill(128)
			e, err := dataplane.New(newXSKSource(q, 16), newDeviceSink(d, 16),
				dataplane.Config{Policy: pol, Workers: 2, Batch: 16, Stages: []dataplane.Stage{d.stage}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()

			var want [2][][]byte
			drops := map[vxlan.Reason]uint64{}
			const n = 600
			for i := range n {
				var f, inner []byte
				switch {
				case i%10 == 7:
					f, _ = vxlanFrame(t, testStranger, 42, net.HardwareAddr{2, 0xb, 0, 0, 0, 1}, byte(i))
					drops[vxlan.DropPeer]++
				case i%10 == 9:
					f, _ = vxlanFrame(t, testPeer, 77, net.HardwareAddr{2, 0xb, 0, 0, 0, 1}, byte(i))
					drops[vxlan.DropUnknownVNI]++
				default:
					net := i % 2
					f, inner = vxlanFrame(t, testPeer, uint32(42+net), net2MAC(net), byte(i))
					want[net] = append(want[net], inner)
				}
				for !q.Inject(f) { // the pipeline is behind: wait for fill frames
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
			st := e.Stats()
			for r, c := range drops {
				if st.Dropped[r] != c {
					t.Errorf("dropped %v: %d, want %d", r, st.Dropped[r], c)
				}
			}
			for i, dev := range devs {
				got, w := dev.frames(), want[i]
				if dev.refuse > 0 { // the refused ones are missing
					var kept [][]byte
					for k, f := range w {
						if (k+1)%dev.refuse != 0 {
							kept = append(kept, f)
						}
					}
					w = kept
				}
				if len(got) != len(w) {
					t.Errorf("%s: %d frames, want %d", dev.name, len(got), len(w))
					continue
				}
				for k := range got {
					if !bytes.Equal(got[k], w[k]) {
						t.Errorf("%s: frame %d differs (order or content)", dev.name, k)
						break
					}
				}
			}
			// The daemon's snapshot over the same engine: the frames the
			// device refused move from delivered to its drop reason, and
			// nothing is left in flight.
			d.engines = []*dataplane.Engine{e}
			snap := d.snapshot()
			refused := devs[1].Stats().WriteErrors
			var wrote uint64
			for _, dev := range devs {
				wrote += dev.Stats().WritePackets
			}
			if err := snap.Check(); err != nil || snap.Decap.Received.Packets != n || snap.Decap.InFlight != 0 ||
				snap.Decap.Delivered.Packets != wrote || refused == 0 {
				t.Errorf("snapshot: %v; received %d delivered %d in flight %d; want %d received, %d delivered (%d refused)",
					err, snap.Decap.Received.Packets, snap.Decap.Delivered.Packets, snap.Decap.InFlight, n, wrote, refused)
			}
			found := false
			for _, dr := range snap.Drops {
				if dr.Direction == metrics.Decap && dr.Reason == "fake_write_error" {
					found = true
					if dr.Packets != refused {
						t.Errorf("fake_write_error drops %d, want %d", dr.Packets, refused)
					}
				}
			}
			if !found {
				t.Error("no fake_write_error drop counter in the snapshot")
			}
			if st.Received != n || st.Delivered+st.DroppedTotal() != n || st.InFlight != 0 {
				t.Errorf("engine: received %d delivered %d dropped %d in flight %d, want %d = delivered + dropped", st.Received, st.Delivered, st.DroppedTotal(), st.InFlight, n)
			}
			a := q.Accounting()
			if err := a.Check(); err != nil || a.InFlight != 0 || a.Invalid != 0 {
				t.Errorf("UMEM accounting %+v: %v", a, err)
			}
		})
	}
}

// net2MAC is the inner source MAC of network n's frames in the tests.
func net2MAC(n int) net.HardwareAddr { return net.HardwareAddr{2, 0xa, 0, 0, 0, byte(n)} }

// fakeHops is a neighbour table: the next hops with a known MAC, and the
// VTEPs asked for.
type fakeHops struct {
	macs   map[[4]byte][6]byte
	wanted map[[4]byte]int
}

func (h *fakeHops) lookup(v [4]byte) ([6]byte, bool) { m, ok := h.macs[v]; return m, ok }
func (h *fakeHops) want(v [4]byte)                   { h.wanted[v]++ }

// readDevice is a fake device whose Read hands out frames, then reports
// the device closed.
type readDevice struct {
	fakeDevice
	frames [][]byte
	read   uint64
}

func (r *readDevice) Stats() tap.Stats { return tap.Stats{Frames: r.read} }

func (r *readDevice) Read(bufs [][]byte, sizes []int, off int) (int, error) {
	n := 0
	for n < len(bufs) && len(r.frames) > 0 {
		sizes[n] = copy(bufs[n][off:], r.frames[0])
		r.frames = r.frames[1:]
		r.read++
		n++
	}
	if n == 0 {
		return 0, os.ErrClosed
	}
	return n, nil
}

// TestEncapWithFakes runs the encap loop of one network over an in-memory
// uplink socket: a frame for a learned MAC goes to that MAC's VTEP only,
// broadcast and unknown unicast to every peer of the flood list (one copy
// each), a frame for a VTEP without a resolved next hop is dropped under
// its reason, and so is a flood copy when the UMEM has no frame left for
// it; the wire frames decode
// (gopacket) to VxLAN from our VTEP carrying the frames intact; and every
// frame read is transmitted or dropped (read + flood copies = transmitted
// + dropped), with every UMEM frame back on the free stack at the end.
func TestEncapWithFakes(t *testing.T) {
	cfg := config.Default()
	cfg.VTEP.Port = 4789
	d := &daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), vtep: testVTEP.As4(),
		uplinkMAC: [6]byte{2, 0, 0, 0, 0, 1}}
	peerB, peerC, peerD := [4]byte{192, 0, 2, 2}, [4]byte{192, 0, 2, 3}, [4]byte{192, 0, 2, 4}
	d.hops = &fakeHops{macs: map[[4]byte][6]byte{peerB: {2, 0, 0, 0, 0, 0xb}, peerC: {2, 0, 0, 0, 0, 0xc}}, wanted: map[[4]byte]int{}}
	// peerD is a peer (the encap loop sends only to peers) whose next hop
	// is not resolved; it is left out of the flood list, so that only the
	// unicast frame to it meets the missing neighbour.
	d.nets = []*network{newNetwork(42, 0, "mflow42", []netip.Addr{netip.AddrFrom4(peerB), netip.AddrFrom4(peerC), netip.AddrFrom4(peerD)})}
	d.fdb.SetFlood(42, d.nets[0].flood[:2])
	known, far := [6]byte{2, 0xa, 0, 0, 0, 1}, [6]byte{2, 0xa, 0, 0, 0, 2}
	d.fdb.Learn(42, known, peerC, 1)
	d.fdb.Learn(42, far, peerD, 1) // a VTEP whose next hop is not resolved

	frame := func(dst [6]byte, size int, tag byte) []byte {
		f := make([]byte, size)
		copy(f, dst[:])
		copy(f[6:], []byte{2, 0xc, 0, 0, 0, 9})
		f[12], f[13] = 0x88, 0xb5 // local experimental EtherType
		f[size-1] = tag
		return f
	}
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	toKnown := frame(known, 100, 1)
	toAll := frame(bcast, 60, 2)
	toUnknown := frame([6]byte{2, 0xa, 0, 0, 0, 7}, 80, 3)
	toFar := frame(far, 90, 4)
	dev := &readDevice{fakeDevice: fakeDevice{name: "mflow42"}, frames: [][]byte{toKnown, toAll, toUnknown, toFar}}
	d.devs = []device{dev}
	d.devMu = make([]sync.Mutex, 1)

	q, err := xsktest.New(xsk.Options{NumFrames: 128, RxSize: -1, InitialFill: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	d.stopping.Store(true) // once the device is drained, stop instead of waiting
	d.encapLoop(0, q)
	// The loop holds a batch's worth of frames (txBatch) for reading: with
	// a UMEM of exactly that size a flood copy finds no frame.
	dev2 := &readDevice{fakeDevice: fakeDevice{name: "mflow42"}, frames: [][]byte{toAll}}
	d.devs[0] = dev2
	small, err := xsktest.New(xsk.Options{NumFrames: txBatch, RxSize: -1, InitialFill: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	d.encapLoop(0, small)
	if n := len(small.Sent()); n != 1 || d.tx.drops[txNoFrame].Load() != 1 {
		t.Errorf("flood with no frame for the copy: %d sent, %d umem_exhausted; want 1, 1", n, d.tx.drops[txNoFrame].Load())
	}
	dev.read += dev2.read
	d.devs[0] = dev // the snapshot below reads the device's count

	type wire struct {
		dst   [4]byte
		inner []byte
	}
	var got []wire
	for _, f := range q.Sent() {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if ip == nil || udp == nil || vx == nil {
			t.Fatalf("a sent frame does not decode as VxLAN: %v", p)
		}
		if [4]byte(ip.SrcIP.To4()) != testVTEP.As4() || udp.DstPort != 4789 || vx.VNI != 42 || !vx.ValidIDFlag {
			t.Errorf("sent frame: %v → %v port %d VNI %d", ip.SrcIP, ip.DstIP, udp.DstPort, vx.VNI)
		}
		got = append(got, wire{[4]byte(ip.DstIP.To4()), vx.Payload})
	}
	want := []wire{{peerC, toKnown}, {peerB, toAll}, {peerC, toAll}, {peerB, toUnknown}, {peerC, toUnknown}}
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("sent to %v: %d bytes, tag %d", g.dst, len(g.inner), g.inner[len(g.inner)-1])
		}
		t.Logf("drops %v copies %d", func() (r []uint64) {
			for i := range numTxReasons {
				r = append(r, d.tx.drops[i].Load())
			}
			return
		}(), d.tx.copies.Load())
		t.Fatalf("sent %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].dst != want[i].dst || !bytes.Equal(got[i].inner, want[i].inner) {
			t.Errorf("sent frame %d: to %v, inner %d bytes; want to %v, %d bytes", i, got[i].dst, len(got[i].inner), want[i].dst, len(want[i].inner))
		}
	}
	if d.hops.(*fakeHops).wanted[peerD] != 1 {
		t.Errorf("the unresolved VTEP was asked for %d times, want 1", d.hops.(*fakeHops).wanted[peerD])
	}
	drops := func(r int) uint64 { return d.tx.drops[r].Load() }
	if drops(txNoNeighbour) != 1 || drops(txTooBig) != 0 {
		t.Errorf("drops: no_neighbour %d, frame_too_big %d; want 1, 0", drops(txNoNeighbour), drops(txTooBig))
	}
	var dropped uint64
	for r := range numTxReasons {
		dropped += drops(r)
	}
	if in, out := dev.read+d.tx.copies.Load(), d.tx.frames.Load()+dropped; in != out || d.tx.frames.Load() != 6 {
		t.Errorf("read %d + copies %d = %d, transmitted %d + dropped %d = %d; want equal, 6 transmitted",
			dev.read, d.tx.copies.Load(), in, d.tx.frames.Load(), dropped, out)
	}
	// The daemon's encap accounting over the same counters.
	snap := d.snapshot()
	if err := snap.Check(); err != nil || snap.Encap.InFlight != 0 || snap.Encap.Received.Packets != dev.read+d.tx.copies.Load() {
		t.Errorf("encap snapshot: %v; received %d in flight %d", err, snap.Encap.Received.Packets, snap.Encap.InFlight)
	}
	for _, u := range []*xsktest.Socket{q, small} {
		u.Complete()
		if a := u.Accounting(); a.Check() != nil || a.Free != a.Frames {
			t.Errorf("UMEM accounting %+v: %v; want every frame free", a, a.Check())
		}
	}
}

// pollCounter counts the waits in poll of the queue it wraps.
type pollCounter struct {
	xsk.Queue
	polls atomic.Int64
}

func (p *pollCounter) PollRx(timeout time.Duration) (bool, error) {
	p.polls.Add(1)
	return p.Queue.PollRx(timeout)
}

// TestXSKSourceSpin: with spinning on, the uplink source takes a frame
// that arrives while it spins without waiting in poll, and one that
// arrives after the spin gave up after waiting there; each once.
func TestXSKSourceSpin(t *testing.T) {
	q, err := xsktest.New(xsk.Options{NumFrames: 64, FillSize: 32, RxSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	pc := &pollCounter{Queue: q}
	src := newXSKSource(pc, 16)
	src.spin.For = 50 * time.Millisecond
	dst := make([][]byte, 16)
	handles := make([]batch.Handle, 16)
	for i, delay := range []time.Duration{time.Millisecond, 150 * time.Millisecond} {
		pc.polls.Store(0)
		go func() {
			time.Sleep(delay)
			f := make([]byte, 60)
			f[0] = byte(i + 1)
			q.Inject(f)
		}()
		n, err := src.Read(context.Background(), dst, handles)
		if err != nil || n != 1 || dst[0][0] != byte(i+1) {
			t.Fatalf("frame sent after %v: Read = %d, %v", delay, n, err)
		}
		src.Release(handles[:n])
		if polls := pc.polls.Load(); (i == 0) != (polls == 0) {
			t.Errorf("frame sent after %v, spinning for %v: %d waits in poll", delay, src.spin.For, polls)
		}
	}
}

// leakySource is an xskSource that never gives back one frame: the bug
// the conservation check exists to catch.
type leakySource struct {
	*xskSource
	leak   int // Release calls before the one that loses its first handle
	leaked bool
}

func (l *leakySource) Release(handles []batch.Handle) {
	if !l.leaked && len(handles) > 0 {
		if l.leak--; l.leak < 0 {
			l.leaked = true
			handles = handles[1:]
		}
	}
	l.xskSource.Release(handles)
}

// TestConservationSeesLeak: the snapshot's decap in flight is measured
// from UMEM ownership, not derived from the counters, so a frame the
// stages never give back (counted as delivered, never released) makes
// the final snapshot fail Check; without the leak it balances exactly.
func TestConservationSeesLeak(t *testing.T) {
	for _, leak := range []bool{false, true} {
		t.Run(fmt.Sprintf("leak=%v", leak), func(t *testing.T) {
			d, _ := testDaemon()
			q, err := xsktest.New(xsk.Options{NumFrames: 256, FillSize: 128, RxSize: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			q.Fill(128)
			d.socks, d.queues = []xsk.Queue{q}, []int{0}
			src := &leakySource{xskSource: newXSKSource(q, 16), leak: 3, leaked: !leak}
			e, err := dataplane.New(src, newDeviceSink(d, 16),
				dataplane.Config{Policy: steer.Microflow, Workers: 2, Batch: 16, Stages: []dataplane.Stage{d.stage}})
			if err != nil {
				t.Fatal(err)
			}
			d.engines = []*dataplane.Engine{e}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			const n = 200
			for i := range n {
				f, _ := vxlanFrame(t, testPeer, 42, net2MAC(0), byte(i))
				for !q.Inject(f) {
					time.Sleep(100 * time.Microsecond)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for e.Stats().Released < n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			snap := d.snapshotAt(true)
			err = snap.Check()
			t.Logf("received %d, delivered %d, in flight (measured) %d: %v", snap.Decap.Received.Packets, snap.Decap.Delivered.Packets, snap.Decap.InFlight, err)
			if leak && err == nil {
				t.Errorf("a frame never released passed the conservation check")
			}
			if !leak && err != nil {
				t.Errorf("no leak, but: %v", err)
			}
		})
	}
}
