package dataplane

import (
	"mflow/batch"
	"mflow/internal/csum"
	"mflow/vxlan"
)

// Stage is one step of per-packet work that a worker applies to a batch in
// place (decap, a checksum). GRO-like merging is not a stage: the TAP
// sink does it when it writes (tap.Device.WriteFrames).
//
// Before the first stage, every frame i < b.N has Out[i] == Frames[i],
// Offset[i] == 0, Net[i] == -1 and Reason[i] == vxlan.Deliver. A stage
// looks only at frames i < b.N whose Reason is still vxlan.Deliver; it may
// narrow Out[i] to a sub-slice (and must then keep Offset[i] the offset of
// Out[i] in Frames[i], which a sink relies on), set VNI[i], Net[i] and
// Hash[i], or drop the frame by setting Reason[i]. It must not reorder
// frames or keep references to them. Workers call Process
// concurrently, so a Stage must be safe for concurrent use.
type Stage interface {
	Process(b *batch.Batch)
}

// DecapStage validates and decapsulates VxLAN frames: Out[i] becomes the
// inner Ethernet frame (a sub-slice, no copy), Offset[i] where it starts
// in Frames[i], VNI[i] its network, and a malformed frame is dropped with
// the decoder's verdict as reason. It is the benchmarks' stage: partial
// checksums (vxlan.Decoder.Partial) are neither counted nor completed here;
// the daemon's own stage does both.
//
// The zero value is usable (the zero vxlan.Decoder: port 4789). It is safe
// for concurrent use as long as Decoder is not modified.
type DecapStage struct {
	Decoder vxlan.Decoder
}

// Process decapsulates every frame of b that is still to be delivered.
func (s *DecapStage) Process(b *batch.Batch) {
	for i := range b.N {
		if b.Reason[i] != vxlan.Deliver {
			continue
		}
		frame := b.Out[i]
		inner, vni, _, r := s.Decoder.Decap(frame)
		b.VNI[i], b.Reason[i] = vni, r
		if r == vxlan.Deliver {
			b.Out[i], b.Offset[i] = inner, b.Offset[i]+uint32(vxlan.InnerOffset(frame))
		}
	}
}

// ChecksumStage is a synthetic CPU-heavy stage for benchmarks and tests: it
// computes a 32-bit one's-complement checksum of each frame's Out Rounds
// times (at least once) and stores it in Hash[i]. It drops nothing.
//
// The zero value is usable (one round). It is safe for concurrent use.
type ChecksumStage struct {
	Rounds int
}

// Process checksums every frame of b that is still to be delivered.
func (s *ChecksumStage) Process(b *batch.Batch) {
	rounds := max(s.Rounds, 1)
	for i := range b.N {
		if b.Reason[i] != vxlan.Deliver {
			continue
		}
		var h uint32
		for r := range rounds {
			h = uint32(csum.Sum(b.Out[i], uint64(h)+uint64(r)))
		}
		b.Hash[i] = h
	}
}
