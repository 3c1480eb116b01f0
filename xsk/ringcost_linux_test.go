package xsk

// BenchmarkRingCost isolates the user-space ring code from the kernel: a
// socket is bound to the loopback device of an idle namespace and the test
// plays the kernel's part in memory (fill ring -> rx ring, same code for
// both backends), so each op is: fake kernel moves a batch, the backend
// receives it and gives it back to the fill ring. This is the measurement
// behind the choice of ring backend (docs/ARCHITECTURE.md §3, docs/DECISIONS.md).

import (
	"reflect"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/asavie/xdp"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

const ringBatch = 64

// fakeKernel moves n descriptors from a fill ring to an rx ring.
type fakeKernel struct {
	fillProd, fillCons, rxProd *uint32
	fill                       []uint64
	rx                         []Desc
}

func (k *fakeKernel) move(n uint32) {
	fc := atomic.LoadUint32(k.fillCons)
	avail := atomic.LoadUint32(k.fillProd) - fc
	n = min(n, avail)
	rp := atomic.LoadUint32(k.rxProd)
	fm, rm := uint32(len(k.fill)-1), uint32(len(k.rx)-1)
	for i := uint32(0); i < n; i++ {
		// Aligned mode: the kernel ignores the offset within the frame
		// of a fill address and returns data 256 bytes in.
		k.rx[(rp+i)&rm] = Desc{Addr: k.fill[(fc+i)&fm]&^uint64(DefaultFrameSize-1) + RxHeadroom, Len: 128}
	}
	atomic.StoreUint32(k.fillCons, fc+n)
	atomic.StoreUint32(k.rxProd, rp+n)
}

func loopbackIndex(b *testing.B) (*testbed.NS, int) {
	ns := testbedtest.NewNS(b, "xskr")
	idx, err := ns.LinkIndex("lo")
	if err != nil {
		b.Fatal(err)
	}
	return ns, idx
}

func BenchmarkRingCost(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		ns, idx := loopbackIndex(b)
		var s *Socket
		if err := ns.Do(func() error {
			var err error
			s, err = Open(idx, 0, Options{NoNeedWakeup: true})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		k := &fakeKernel{fillProd: s.fill.producer, fillCons: s.fill.consumer, rxProd: s.rx.producer, fill: s.fillDescs, rx: s.rxDescs}
		descs := make([]Desc, ringBatch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k.move(ringBatch)
			n := s.Receive(descs)
			s.Release(descs[:n])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ringBatch), "ns/pkt")
		if err := s.Verify(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("asavie", func(b *testing.B) {
		ns, idx := loopbackIndex(b)
		var xs *xdp.Socket
		if err := ns.Do(func() error {
			var err error
			xs, err = xdp.NewSocket(idx, 0, &xdp.SocketOptions{
				NumFrames: DefaultNumFrames, FrameSize: DefaultFrameSize,
				FillRingNumDescs: DefaultRingSize, CompletionRingNumDescs: DefaultRingSize,
				RxRingNumDescs: DefaultRingSize, TxRingNumDescs: DefaultRingSize,
			})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer xs.Close()
		// asavie keeps its rings unexported; reflect reads the pointers.
		v := reflect.ValueOf(xs).Elem()
		ptr := func(ring, field string) *uint32 {
			return (*uint32)(unsafe.Pointer(v.FieldByName(ring).FieldByName(field).Pointer()))
		}
		fr := v.FieldByName("fillRing").FieldByName("Descs")
		rr := v.FieldByName("rxRing").FieldByName("Descs")
		k := &fakeKernel{
			fillProd: ptr("fillRing", "Producer"), fillCons: ptr("fillRing", "Consumer"), rxProd: ptr("rxRing", "Producer"),
			fill: unsafe.Slice((*uint64)(unsafe.Pointer(fr.Pointer())), fr.Len()),
			rx:   unsafe.Slice((*Desc)(unsafe.Pointer(rr.Pointer())), rr.Len()),
		}
		xs.Fill(xs.GetDescs(DefaultRingSize))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k.move(ringBatch)
			descs := xs.Receive(ringBatch)
			xs.Fill(descs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ringBatch), "ns/pkt")
	})
}
