package tap

import (
	"cmp"
	"slices"

	"mflow/vxlan"
)

// keyedFrame is a frame with its inner flow's hash, for groupByFlow.
type keyedFrame struct {
	key   uint32
	frame []byte
}

// groupByFlow reorders frames so that the frames of each inner flow are
// adjacent, keeping the order within every flow (a stable sort on the
// flow hash of frame[off:]). Frames of different flows may change places;
// that is all a flow's receiver can tell apart, and it is what lets the TAP
// coalesce interleaved flows into super-frames. Two flows whose hashes
// collide stay interleaved, in order. scratch must have room for
// len(frames); nothing is allocated.
func groupByFlow(frames [][]byte, off int, scratch []keyedFrame) {
	if len(frames) < 3 {
		return
	}
	k := scratch[:len(frames)]
	grouped := true
	for i, f := range frames {
		k[i] = keyedFrame{vxlan.InnerHash(f[off:], 0), f}
		if i > 0 && k[i].key != k[i-1].key {
			grouped = false
		}
	}
	if grouped {
		return // one flow: nothing to do
	}
	slices.SortStableFunc(k, func(a, b keyedFrame) int { return cmp.Compare(a.key, b.key) })
	for i := range k {
		frames[i] = k[i].frame
		k[i].frame = nil
	}
}
