package dataplane

import (
	"fmt"

	"mflow/reorder"
	"mflow/vxlan"
)

// DropReason says why the engine dropped a frame: a decap verdict
// (vxlan.Reason, same numeric values) or an engine reason that follows them.
type DropReason uint8

// Engine drop reasons, numbered after the vxlan verdicts.
const (
	// DropSinkError: the sink's Write failed for the frame's batch.
	DropSinkError = DropReason(vxlan.NumReasons) + iota
	// NumDropReasons is the size of arrays indexed by DropReason.
	NumDropReasons
)

// String returns the reason's metric label, e.g. "short_frame" or
// "sink_error".
func (r DropReason) String() string {
	switch {
	case r < DropReason(vxlan.NumReasons):
		return vxlan.Reason(r).String()
	case r == DropSinkError:
		return "sink_error"
	}
	return fmt.Sprintf("drop_reason_%d", uint8(r))
}

// Stats is a snapshot of an engine's counters. Conservation holds in every
// snapshot: Received == Delivered + DroppedTotal() + InFlight.
type Stats struct {
	// Received counts frames read from the source, ReceivedBytes their
	// bytes (as read, e.g. the outer frames).
	Received, ReceivedBytes uint64
	// Delivered counts frames the sink accepted, DeliveredBytes their
	// bytes (Out, e.g. the inner frames).
	Delivered, DeliveredBytes uint64
	// Dropped counts dropped frames by reason. Dropped[0] (vxlan.Deliver)
	// stays zero.
	Dropped [NumDropReasons]uint64
	// InFlight is the number of frames received and not yet delivered or
	// dropped.
	InFlight uint64
	// Released counts frames returned to the source (delivered or
	// dropped).
	Released uint64
	// Batches counts dispatched batches (micro-flows).
	Batches uint64
	// InlineBatches counts the batches of those that the dispatcher
	// processed itself, nothing being in flight (Config.Inline).
	InlineBatches uint64
	// WorkerPackets counts the frames each worker processed.
	WorkerPackets []uint64
	// Merger holds the merger's counters (zero without a merger).
	Merger reorder.Stats
}

// DroppedTotal returns the sum of Dropped.
func (s *Stats) DroppedTotal() uint64 {
	var n uint64
	for _, d := range s.Dropped {
		n += d
	}
	return n
}

// Stats returns a snapshot of the counters. It allocates (WorkerPackets) and
// may be called at any time from any goroutine.
func (e *Engine) Stats() Stats {
	var s Stats
	// Load the downstream counters before Received, so that every frame
	// counted as delivered or dropped is also counted as received.
	s.Released = e.released.Load()
	s.Delivered = e.delivered.Load()
	s.DeliveredBytes = e.deliveredBytes.Load()
	s.Dropped[DropSinkError] = e.sinkDrops.Load()
	s.WorkerPackets = make([]uint64, len(e.workers))
	for i := range e.workers {
		c := &e.workers[i]
		for r := range c.drops {
			s.Dropped[r] += c.drops[r].Load()
		}
		s.WorkerPackets[i] = c.packets.Load()
	}
	if e.merger != nil {
		s.Merger = e.merger.Stats()
	}
	s.Batches = e.disp.Dispatched()
	s.InlineBatches = e.inline.Load()
	s.Received = e.disp.Received()
	s.ReceivedBytes = e.disp.ReceivedBytes()
	s.InFlight = s.Received - s.Delivered - s.DroppedTotal()
	return s
}
