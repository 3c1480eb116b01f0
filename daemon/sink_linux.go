package daemon

import (
	"mflow/steer"
	"mflow/tap"
)

// tapSink writes each delivered inner frame to its network's TAP, in
// order per TAP. One per engine: the engine calls Write from one goroutine
// at a time, and the per-TAP buffers here are reused for every batch.
type tapSink struct {
	d       *Daemon
	bufs    [][][]byte // per network: the frames of the current batch
	scratch []keyedFrame
}

func newTAPSink(d *Daemon, batch int) *tapSink {
	s := &tapSink{d: d, bufs: make([][][]byte, len(d.nets)), scratch: make([]keyedFrame, batch)}
	for i := range s.bufs {
		s.bufs[i] = make([][]byte, 0, batch)
	}
	return s
}

// Write implements dataplane.Sink. The frames of each TAP are first
// grouped by inner flow (order within a flow kept), then runs of TCP
// segments or equal-sized UDP datagrams of one flow are coalesced into one
// super-frame per write (tap.WriteCoalesced): a TAP write costs
// microseconds, so this is where a micro-flow's batch pays off. Every other frame is written with the TAP's virtio header in the
// bytes just before the inner frame (the outer headers, no longer needed),
// so it is not copied.
func (s *tapSink) Write(b *steer.Batch) error {
	for i := range s.bufs {
		s.bufs[i] = s.bufs[i][:0]
	}
	for i := range b.Delivered {
		n := s.d.byVNI[b.VNI[i]]
		off := int(b.Hash[i])
		s.bufs[n.index] = append(s.bufs[n.index], b.Frames[i][off-tap.VirtioNetHdrLen:off+len(b.Out[i])])
	}
	var err error
	for i, frames := range s.bufs {
		if len(frames) == 0 {
			continue
		}
		if _, veth := s.d.taps[i].(*vethDevice); !veth {
			// Grouping only helps coalescing, which a veth does not do.
			groupByFlow(frames, tap.VirtioNetHdrLen, s.scratch)
		}
		s.d.tapMu[i].Lock()
		// Frames the kernel refuses one by one are counted by the TAP
		// (WriteErrors); an error here means the device is gone.
		if _, werr := s.d.taps[i].WriteCoalesced(frames, tap.VirtioNetHdrLen); werr != nil && err == nil {
			err = werr
		}
		s.d.tapMu[i].Unlock()
		clear(frames)
	}
	return err
}
