package daemon

import (
	"mflow/batch"
	"mflow/tap"
)

// deviceSink writes each delivered inner frame to its network's device, in
// order per flow. One per engine: the engine calls Write from one goroutine
// at a time, and the per-device buffers here are reused for every batch.
type deviceSink struct {
	d    *daemon
	bufs [][][]byte // per network: the frames of the current batch
}

func newDeviceSink(d *daemon, n int) *deviceSink {
	s := &deviceSink{d: d, bufs: make([][][]byte, len(d.nets))}
	for i := range s.bufs {
		s.bufs[i] = make([][]byte, 0, n)
	}
	return s
}

// Write implements dataplane.Sink: it sorts the batch's frames by network
// (Net, set by the network stage) and hands each network's to its device
// at once (WriteFrames: a TAP groups them by inner flow and coalesces runs
// of a flow into super-frames, since a TAP write costs microseconds; a
// veth transmits them). Each frame goes out with room for the TAP's virtio
// header in the bytes just before the inner frame (the outer headers, no
// longer needed), so it is not copied here.
func (s *deviceSink) Write(b *batch.Batch) error {
	for i := range s.bufs {
		s.bufs[i] = s.bufs[i][:0]
	}
	for i := range b.Delivered {
		n, off := b.Net[i], int(b.Offset[i])
		s.bufs[n] = append(s.bufs[n], b.Frames[i][off-tap.VirtioNetHdrLen:off+len(b.Out[i])])
	}
	var err error
	for i, frames := range s.bufs {
		if len(frames) == 0 {
			continue
		}
		s.d.devMu[i].Lock()
		// Frames the kernel refuses one by one are counted by the device
		// (WriteErrors); an error here means the device is gone.
		if _, werr := s.d.devs[i].WriteFrames(frames, tap.VirtioNetHdrLen); werr != nil && err == nil {
			err = werr
		}
		s.d.devMu[i].Unlock()
		clear(frames)
	}
	return err
}
