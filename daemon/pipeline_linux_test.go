package daemon

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"mflow/batch"
	"mflow/bench/gen"
	"mflow/dataplane"
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

// fakeDevice records what the sink writes; it refuses nothing.
type fakeDevice struct {
	name string
	mu   sync.Mutex
	got  [][]byte // inner frames, copied
	hdr  []bool   // whether the virtio headroom was there
}

func (f *fakeDevice) Name() string { return f.name }
func (f *fakeDevice) WriteFrames(frames [][]byte, off int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fr := range frames {
		f.got = append(f.got, append([]byte(nil), fr[off:]...))
		f.hdr = append(f.hdr, len(fr) >= off)
	}
	return len(frames), nil
}
func (f *fakeDevice) Read([][]byte, []int, int) (int, error) { return 0, nil }
func (f *fakeDevice) Stats() tap.Stats                       { return tap.Stats{} }
func (f *fakeDevice) KernelDrops() uint64                    { return 0 }
func (f *fakeDevice) WriteErrorReason() string               { return "fake_write_error" }
func (f *fakeDevice) Close() error                           { return nil }

func (f *fakeDevice) frames() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

// testDaemon is a Daemon with networks 42 and 43 (peer testPeer) on fake
// devices, wired as Run wires one queue's engine.
func testDaemon() (*Daemon, []*fakeDevice) {
	d := &Daemon{}
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
				got := dev.frames()
				if len(got) != len(want[i]) {
					t.Errorf("%s: %d frames, want %d", dev.name, len(got), len(want[i]))
					continue
				}
				for k := range got {
					if !bytes.Equal(got[k], want[i][k]) {
						t.Errorf("%s: frame %d differs (order or content)", dev.name, k)
						break
					}
				}
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
