package tap

// WriteFrames writes a batch of frames towards the containers: the
// frames (at bufs[i][offset:], with room for the virtio header before
// them) are first grouped by inner flow, keeping the order within every
// flow (GroupByFlow), then written with WriteCoalesced, so that
// interleaved flows still make super-frames. Frames of different flows
// may change places; a flow's receiver cannot tell. It reorders bufs in
// place and allocates nothing once its scratch has grown to the largest
// batch.
func (d *Device) WriteFrames(bufs [][]byte, offset int) (int, error) {
	if len(d.group) < len(bufs) {
		d.group = make([]keyedFrame, len(bufs))
	}
	groupByFlow(bufs, offset, d.group)
	return d.WriteCoalesced(bufs, offset)
}

// KernelDrops counts frames the kernel dropped on their way to mflow: the
// TAP's tx_dropped, frames the bridge sent while the device's queue to
// user space was full. It returns 0 when the count cannot be read (the
// device is gone).
func (d *Device) KernelDrops() uint64 {
	l, err := d.nl.LinkByIndex(d.index)
	if err != nil || l.Attrs().Statistics == nil {
		return 0
	}
	return l.Attrs().Statistics.TxDropped
}

// WriteErrorReason is the drop reason under which frames the kernel
// refused on a write are counted (Stats.WriteErrors).
func (d *Device) WriteErrorReason() string { return "tap_write_error" }
