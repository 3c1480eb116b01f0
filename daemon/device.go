package daemon

import "mflow/tap"

// device is a network's local device: a TAP (*tap.Device) or mflow's end
// of a veth pair served with AF_XDP (*veth.Device). WriteFrames and Read
// take frames at offset off of each buffer; a veth ignores the room for a
// virtio header in front of each frame it writes.
type device interface {
	Name() string
	// WriteFrames writes a batch of frames towards the containers, in
	// order per flow (a TAP groups and coalesces them).
	WriteFrames(frames [][]byte, off int) (int, error)
	// Read takes frames from the containers into bufs[k][off:].
	Read(bufs [][]byte, sizes []int, off int) (int, error)
	// Stats counts in the TAP's terms (tap.Stats).
	Stats() tap.Stats
	// KernelDrops counts frames for mflow that the kernel dropped in the
	// device's queues before mflow read them.
	KernelDrops() uint64
	// WriteErrorReason is the decap drop reason of frames WriteFrames
	// could not write (Stats.WriteErrors).
	WriteErrorReason() string
	Close() error
}
