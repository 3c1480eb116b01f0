package tap

import (
	"encoding/binary"
	"testing"
)

// flowFrame is an inner Ethernet/IPv4/UDP frame of flow f (its source
// port) carrying sequence number seq.
func flowFrame(f, seq int) []byte {
	b := make([]byte, 14+20+8+4)
	b[12], b[13] = 0x08, 0x00
	b[14] = 0x45
	b[14+9] = 17
	copy(b[14+12:], []byte{10, 42, 0, 1, 10, 42, 0, 2})
	binary.BigEndian.PutUint16(b[34:], uint16(40000+f))
	binary.BigEndian.PutUint16(b[36:], 5000)
	binary.BigEndian.PutUint32(b[42:], uint32(seq))
	return b
}

func TestGroupByFlow(t *testing.T) {
	const flows, per = 5, 40
	var frames [][]byte
	for s := 0; s < per; s++ {
		for f := 0; f < flows; f++ {
			frames = append(frames, flowFrame(f, s))
		}
	}
	scratch := make([]keyedFrame, len(frames))
	groupByFlow(frames, 0, scratch)
	// Each flow is contiguous and in order; every frame is still there.
	seen := map[int]bool{}
	last := map[int]int{}
	runs := 0
	prev := -1
	for _, fr := range frames {
		f := int(binary.BigEndian.Uint16(fr[34:])) - 40000
		seq := int(binary.BigEndian.Uint32(fr[42:]))
		if f != prev {
			if seen[f] {
				t.Fatalf("flow %d is split", f)
			}
			seen[f] = true
			runs++
			last[f] = -1
			prev = f
		}
		if seq != last[f]+1 {
			t.Fatalf("flow %d: seq %d after %d", f, seq, last[f])
		}
		last[f] = seq
	}
	if runs != flows || len(frames) != flows*per {
		t.Fatalf("%d runs of %d frames, want %d runs of %d", runs, len(frames), flows, flows*per)
	}
	reset := func() {
		i := 0
		for s := 0; s < per; s++ {
			for f := 0; f < flows; f++ {
				frames[i] = flowFrame(f, s)
				i++
			}
		}
	}
	reset()
	frozen := append([][]byte(nil), frames...)
	if a := testing.AllocsPerRun(100, func() {
		copy(frames, frozen)
		groupByFlow(frames, 0, scratch)
	}); a != 0 {
		t.Fatalf("groupByFlow: %v allocations", a)
	}
}
