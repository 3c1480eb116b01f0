package batch

import (
	"testing"

	"mflow/vxlan"
)

// TestPartition: dropped frames move behind the delivered ones, which keep
// their order, with every per-frame field; drops are counted by reason;
// nothing allocates.
func TestPartition(t *testing.T) {
	b := NewBatch(6)
	b.N = 6
	for i := range 6 {
		b.Frames[i] = []byte{byte(i)}
		b.Handles[i] = Handle(100 + i)
	}
	b.Begin()
	for i := range 6 {
		b.Offset[i], b.Net[i] = uint32(i), int32(i)
	}
	b.Reason[1] = vxlan.DropShort
	b.Reason[2] = vxlan.DropPort
	b.Reason[4] = vxlan.DropShort
	var drops [vxlan.NumReasons]uint64
	if n := b.Partition(&drops); n != 3 || b.Delivered != 3 {
		t.Fatalf("Partition dropped %d, Delivered %d; want 3, 3", n, b.Delivered)
	}
	for i, want := range []byte{0, 3, 5} {
		if b.Frames[i][0] != want || b.Out[i][0] != want || b.Reason[i] != vxlan.Deliver {
			t.Errorf("delivered[%d] = frame %d out %d reason %v, want %d", i, b.Frames[i][0], b.Out[i][0], b.Reason[i], want)
		}
		// The metadata moves with its frame.
		if b.Handles[i] != Handle(100+int(want)) || b.Offset[i] != uint32(want) || b.Net[i] != int32(want) {
			t.Errorf("delivered[%d]: handle %d offset %d net %d, want those of frame %d", i, b.Handles[i], b.Offset[i], b.Net[i], want)
		}
	}
	if drops[vxlan.DropShort] != 2 || drops[vxlan.DropPort] != 1 || len(b.Dropped()) != 3 {
		t.Errorf("drops %v, dropped frames %d", drops, len(b.Dropped()))
	}
	if a := testing.AllocsPerRun(100, func() { b.Begin(); b.Reason[2] = vxlan.DropShort; b.Partition(&drops) }); a != 0 {
		t.Errorf("Begin+Partition allocate %.1f times per batch", a)
	}
}
