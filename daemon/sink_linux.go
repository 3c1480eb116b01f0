package daemon

import (
	"time"

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
// longer needed), so it is not copied here. It returns no error: a device
// whose write fails loses only its own frames (counted per network, see
// network.lost), not the batch's frames for the other devices, which the
// engine would otherwise count as sink errors.
func (s *deviceSink) Write(b *batch.Batch) error {
	for i := range s.bufs {
		s.bufs[i] = s.bufs[i][:0]
	}
	for i := range b.Delivered {
		n, off := b.Net[i], int(b.Offset[i])
		s.bufs[n] = append(s.bufs[n], b.Frames[i][off-tap.VirtioNetHdrLen:off+len(b.Out[i])])
	}
	for i, frames := range s.bufs {
		if len(frames) == 0 {
			continue
		}
		s.d.devMu[i].Lock()
		// Frames the kernel refuses one by one are counted by the device
		// (WriteErrors); an error here means the device failed as a whole
		// (it is gone). Only that network's frames are lost: they are
		// counted as its write errors, and the batch still counts as
		// written, since the other networks' frames were.
		n, werr := s.d.devs[i].WriteFrames(frames, tap.VirtioNetHdrLen)
		s.d.devMu[i].Unlock()
		if werr != nil {
			nw := s.d.nets[i]
			nw.lost.Add(uint64(len(frames) - min(n, len(frames))))
			if now := time.Now().UnixNano(); now-nw.warned.Load() > int64(10*time.Second) {
				nw.warned.Store(now)
				s.d.log.Warn("device write failed: its frames are dropped", "device", nw.device, "vni", nw.vni,
					"reason", s.d.devs[i].WriteErrorReason(), "err", werr)
			}
		}
		clear(frames)
	}
	return nil
}
