// Package batch is the pipeline's unit of work: a Batch of frames with
// their per-frame metadata, and the fixed Pool of batches that bounds the
// memory an engine has in flight.
package batch

import (
	"context"
	"fmt"

	"mflow/vxlan"
)

// Handle identifies one frame to the source that lent it: an AF_XDP
// socket's UMEM address, an in-memory source's buffer index. It travels
// with the frame from the source's Read to its Release; nothing else
// interprets it.
type Handle uint64

// Batch is the unit of work handed between the stages of the engine: up to
// Cap frames plus per-frame metadata in parallel arrays (no pointer per
// packet).
//
// Lifecycle: the dispatcher fills Frames[:N] and Handles[:N] from the
// source and stamps Seq and Worker; a worker runs the stages, which set
// Out, Offset, VNI, Net, Hash and Reason for each frame, then partitions
// the batch so that Frames[:Delivered] (and the metadata at the same
// indices) are the frames to deliver, in arrival order, and
// Frames[Delivered:N] the dropped ones; the sink writes Out[:Delivered];
// finally Handles[:N] go back to the source and the batch back to its
// Pool.
//
// The zero value is not usable; batches come from a Pool. A Batch is owned
// by one goroutine at a time (ownership moves with the batch); it is not
// safe for concurrent use.
type Batch struct {
	// Seq is the dispatch sequence number (0, 1, 2, … per Dispatcher).
	Seq uint64
	// Worker is the worker the batch was dispatched to.
	Worker int
	// N is the number of frames read from the source, all owned by the
	// batch until released.
	N int
	// Delivered is, after the worker, the number of frames to deliver:
	// Frames[:Delivered]. Frames[Delivered:N] were dropped.
	Delivered int

	// Frames holds the frames as read from the source (their owner's
	// buffers). len(Frames) is the batch capacity.
	Frames [][]byte
	// Handles identifies each frame to its source (see Handle).
	Handles []Handle
	// Out is the part of each frame a sink writes: the whole frame before
	// any stage, the inner Ethernet frame after decapsulation.
	Out [][]byte
	// Offset is where Out[i] starts in Frames[i]: 0 before any stage, the
	// inner frame's offset after decapsulation (a sink may write a header
	// into the bytes before it).
	Offset []uint32
	// VNI is the VxLAN network identifier of each frame, set by decap.
	VNI []uint32
	// Net is the index of the frame's network in its owner's table, set by
	// a stage that knows the networks (-1 before); the sink routes by it.
	Net []int32
	// Hash is a per-frame 32-bit value a stage may set (a flow hash, a
	// checksum).
	Hash []uint32
	// Reason is each frame's verdict: vxlan.Deliver or why it is dropped.
	Reason []vxlan.Reason
}

// NewBatch returns a batch with room for capacity frames.
func NewBatch(capacity int) *Batch {
	return &Batch{
		Frames:  make([][]byte, capacity),
		Handles: make([]Handle, capacity),
		Out:     make([][]byte, capacity),
		Offset:  make([]uint32, capacity),
		VNI:     make([]uint32, capacity),
		Net:     make([]int32, capacity),
		Hash:    make([]uint32, capacity),
		Reason:  make([]vxlan.Reason, capacity),
	}
}

// Cap returns the number of frames the batch can hold.
func (b *Batch) Cap() int { return len(b.Frames) }

// Dropped returns the dropped frames, valid after Partition.
func (b *Batch) Dropped() [][]byte { return b.Frames[b.Delivered:b.N] }

// Begin prepares frames [:N] for the stages: Out[i] is the whole frame at
// offset 0, no network, and every verdict is vxlan.Deliver.
func (b *Batch) Begin() {
	for i := range b.N {
		b.Out[i] = b.Frames[i]
		b.Offset[i] = 0
		b.VNI[i] = 0
		b.Net[i] = -1
		b.Hash[i] = 0
		b.Reason[i] = vxlan.Deliver
	}
	b.Delivered = b.N
}

// Partition moves the frames whose Reason is not vxlan.Deliver behind the
// delivered ones, keeping the delivered frames in arrival order, and sets
// Delivered. It adds one to drops[r] for each dropped frame with reason r
// (drops may be nil) and returns the number dropped.
func (b *Batch) Partition(drops *[vxlan.NumReasons]uint64) int {
	w := 0
	for i := range b.N {
		r := b.Reason[i]
		if r == vxlan.Deliver {
			if w != i {
				b.swap(w, i)
			}
			w++
			continue
		}
		if drops != nil && r < vxlan.NumReasons {
			drops[r]++
		}
	}
	b.Delivered = w
	return b.N - w
}

func (b *Batch) swap(i, j int) {
	b.Frames[i], b.Frames[j] = b.Frames[j], b.Frames[i]
	b.Handles[i], b.Handles[j] = b.Handles[j], b.Handles[i]
	b.Out[i], b.Out[j] = b.Out[j], b.Out[i]
	b.Offset[i], b.Offset[j] = b.Offset[j], b.Offset[i]
	b.VNI[i], b.VNI[j] = b.VNI[j], b.VNI[i]
	b.Net[i], b.Net[j] = b.Net[j], b.Net[i]
	b.Hash[i], b.Hash[j] = b.Hash[j], b.Hash[i]
	b.Reason[i], b.Reason[j] = b.Reason[j], b.Reason[i]
}

// reset clears the references a batch holds so that a pooled batch keeps no
// frame alive.
func (b *Batch) reset() {
	clear(b.Frames[:b.N])
	clear(b.Out[:b.N])
	b.N, b.Delivered, b.Seq, b.Worker = 0, 0, 0, 0
}

// Pool is a fixed set of batches: the engine's bound on memory in flight.
// Get blocks while every batch is in use.
//
// The zero value is not usable; create one with NewPool. A Pool is safe for
// concurrent use.
type Pool struct {
	free     chan *Batch
	size     int
	capacity int
}

// NewPool returns a pool of size batches of capacity frames each.
func NewPool(size, capacity int) (*Pool, error) {
	if size < 1 || capacity < 1 {
		return nil, fmt.Errorf("create batch pool: size %d and capacity %d must be positive", size, capacity)
	}
	p := &Pool{free: make(chan *Batch, size), size: size, capacity: capacity}
	for range size {
		p.free <- NewBatch(capacity)
	}
	return p, nil
}

// Size returns the number of batches in the pool.
func (p *Pool) Size() int { return p.size }

// BatchCap returns the frame capacity of the pool's batches.
func (p *Pool) BatchCap() int { return p.capacity }

// Free returns the number of batches not in use.
func (p *Pool) Free() int { return len(p.free) }

// Get takes a batch, waiting while none is free. It returns ctx's error if
// ctx is done first.
func (p *Pool) Get(ctx context.Context) (*Batch, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("get batch: %w", ctx.Err())
	}
}

// TryGet takes a batch if one is free.
func (p *Pool) TryGet() (*Batch, bool) {
	select {
	case b := <-p.free:
		return b, true
	default:
		return nil, false
	}
}

// Wait takes a batch, waiting as long as it takes (batches in flight
// always come back).
func (p *Pool) Wait() *Batch { return <-p.free }

// Put returns b to the pool after clearing its frame references. The
// frames themselves must already be back with their owner.
func (p *Pool) Put(b *Batch) {
	b.reset()
	select {
	case p.free <- b:
	default:
		panic("batch: Pool.Put of a batch that is not from this pool")
	}
}
