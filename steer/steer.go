// Package steer is mflow's dispatcher: it reads frames from a Source in
// batches and decides which worker handles which frames, following one of
// the steering policies of docs/ARCHITECTURE.md §4.
//
// Data flow:
//
//	Source.Read ──► Batch (from a fixed Pool) ──► Dispatcher ── Send(w, batch) ──► worker w
//
// Every dispatched batch carries a sequence number (Batch.Seq, counting
// from 0), so a merger (package reorder) can put the batches back in order
// after parallel processing. The dispatcher hands over batches, never
// single packets, and never waits to fill a batch: whatever one Read
// returns (the frames that were ready) is dispatched at once, a partial
// batch included.
//
// The policies:
//
//	single     one batch per Read, all to worker 0 (the caller runs every stage inline)
//	pipeline   like single; the caller runs decap and sink on different goroutines
//	flow       each frame goes to worker OuterHash(frame) mod N: a flow sticks to a worker
//	microflow  consecutive frames are cut into micro-flows of Batch frames; micro-flow k
//	           goes to worker k mod N, or to the least loaded worker when Load is set
//
// Back-pressure comes from the caller's Send (a bounded queue per worker)
// and from the Pool: when every batch is in flight the dispatcher stops
// reading.
package steer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"mflow/batch"
	"mflow/vxlan"
)

// Policy is a steering policy. The zero value is Single.
type Policy uint8

// The steering policies of docs/ARCHITECTURE.md §4.
const (
	// Single: one goroutine reads, processes and writes, in order.
	Single Policy = iota
	// Flow: the outer 5-tuple hash picks the worker (RSS-like).
	Flow
	// Pipeline: decap on one goroutine, sink on another (stage per core).
	Pipeline
	// Microflow: micro-flows of consecutive packets spread over workers
	// and merged back in order (MFLOW).
	Microflow
	numPolicies
)

var policyNames = [numPolicies]string{"single", "flow", "pipeline", "microflow"}

// String returns the policy's configuration name.
func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// Policies returns every policy, in declaration order.
func Policies() []Policy { return []Policy{Single, Flow, Pipeline, Microflow} }

// ErrUnknownPolicy is returned by ParsePolicy for a name it does not know.
var ErrUnknownPolicy = errors.New("unknown steering policy")

// ParsePolicy returns the policy named s ("single", "flow", "pipeline" or
// "microflow").
func ParsePolicy(s string) (Policy, error) {
	for p, n := range policyNames {
		if n == s {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("parse policy %q: %w", s, ErrUnknownPolicy)
}

// DefaultBatch is the default micro-flow size in packets (the paper's
// choice, Fig. 7).
const DefaultBatch = 256

// Source is where frames come from (an AF_XDP socket, an in-memory fake).
//
// Read and Release are each called from a single goroutine, possibly two
// different ones running at the same time.
type Source interface {
	// Read blocks until at least one frame is ready, then fills dst with
	// the frames that are ready now, up to len(dst), without waiting for
	// more, and returns how many. The frames belong to the source and are
	// lent to the caller until Release. When no frame can come it returns
	// 0 and an error: io.EOF at the end of a finite source, the context's
	// error when ctx is done.
	// handles[i] receives frame i's handle, which Release takes back.
	Read(ctx context.Context, dst [][]byte, handles []batch.Handle) (n int, err error)
	// Release gives frames back to the source by their handles. It must
	// not retain the slice handles itself.
	Release(handles []batch.Handle)
}

// Dispatcher reads batches from a Source and hands them to workers.
//
// Set the exported fields, then call Run once. The zero value is not
// usable (Pool, Source and Send are required). Only Dispatched and
// Received may be called while Run runs, from any goroutine.
type Dispatcher struct {
	// Policy selects how frames are spread over workers.
	Policy Policy
	// Workers is the number of workers (only 1 is used by Single and
	// Pipeline).
	Workers int
	// Pool provides the batches; its batch capacity is the micro-flow size.
	Pool *batch.Pool
	// Source provides the frames.
	Source Source
	// Send hands batch b to worker w; it may block (back-pressure). It
	// owns b from then on. Send is called from Run's goroutine only.
	Send func(w int, b *batch.Batch)
	// Load, if set, returns how many batches worker w has queued;
	// Microflow then sends each micro-flow to the least loaded worker
	// (ties go round robin) instead of k mod N.
	Load func(w int) int
	// Hash returns the flow hash of a frame for Flow; nil means
	// vxlan.OuterHash with seed 0.
	Hash func(frame []byte) uint32

	seq      uint64        // next sequence number; Run's goroutine only
	batches  atomic.Uint64 // batches dispatched
	received atomic.Uint64 // frames read
	rxBytes  atomic.Uint64 // their bytes
}

// Dispatched returns the number of batches (micro-flows) dispatched so far.
func (d *Dispatcher) Dispatched() uint64 { return d.batches.Load() }

// Received returns the number of frames read from the source so far.
func (d *Dispatcher) Received() uint64 { return d.received.Load() }

// ReceivedBytes returns the bytes of the frames read so far. It is counted
// after Received, so a concurrent reader may see a frame counted but not
// yet its bytes.
func (d *Dispatcher) ReceivedBytes() uint64 { return d.rxBytes.Load() }

// countRead counts frames read from the source.
func (d *Dispatcher) countRead(frames [][]byte) {
	var n uint64
	for _, f := range frames {
		n += uint64(len(f))
	}
	d.received.Add(uint64(len(frames)))
	d.rxBytes.Add(n)
}

// Run reads and dispatches until ctx is done or the source fails or ends.
// Every frame read is dispatched before Run returns; Run never holds a
// frame when it returns. It returns nil when ctx was cancelled or the source
// ended (io.EOF), and the wrapped source error otherwise.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Pool == nil || d.Source == nil || d.Send == nil {
		return errors.New("run dispatcher: Pool, Source and Send are required")
	}
	n := d.Workers
	if d.Policy == Single || d.Policy == Pipeline || n < 1 {
		n = 1
	}
	var err error
	if d.Policy == Flow && n > 1 {
		err = d.runFlow(ctx, n)
	} else {
		err = d.runBatches(ctx, n)
	}
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *Dispatcher) send(w int, b *batch.Batch) {
	b.Seq = d.seq
	b.Worker = w
	d.seq++
	d.batches.Add(1)
	d.Send(w, b)
}

// runBatches serves Single, Pipeline and Microflow: one Read per batch.
func (d *Dispatcher) runBatches(ctx context.Context, n int) error {
	next := 0 // round-robin cursor
	for ctx.Err() == nil {
		b, err := d.Pool.Get(ctx)
		if err != nil {
			return nil
		}
		k, err := d.Source.Read(ctx, b.Frames, b.Handles)
		b.N = k
		if k == 0 {
			d.Pool.Put(b)
			if err != nil {
				return fmt.Errorf("read frames: %w", err)
			}
			continue
		}
		d.countRead(b.Frames[:k])
		w := next
		if d.Load != nil && n > 1 {
			w = d.leastLoaded(n, next)
		}
		if next++; next == n {
			next = 0
		}
		d.send(w, b)
		if err != nil {
			return fmt.Errorf("read frames: %w", err)
		}
	}
	return nil
}

// leastLoaded returns the worker with the fewest queued batches, starting
// the search at from so that ties rotate.
func (d *Dispatcher) leastLoaded(n, from int) int {
	best, bestLoad := from, d.Load(from)
	for i := 1; i < n && bestLoad > 0; i++ {
		w := from + i
		if w >= n {
			w -= n
		}
		if l := d.Load(w); l < bestLoad {
			best, bestLoad = w, l
		}
	}
	return best
}

// runFlow serves Flow: each Read is split by flow hash into up to n batches.
func (d *Dispatcher) runFlow(ctx context.Context, n int) error {
	hash := d.Hash
	if hash == nil {
		hash = outerHash
	}
	scratch := make([][]byte, d.Pool.BatchCap())
	handles := make([]batch.Handle, d.Pool.BatchCap())
	pend := make([]*batch.Batch, n)
	for ctx.Err() == nil {
		k, err := d.Source.Read(ctx, scratch, handles)
		d.countRead(scratch[:k])
		for i, f := range scratch[:k] {
			w := int(uint64(hash(f)) * uint64(n) >> 32)
			b := pend[w]
			if b == nil {
				b = d.pendingBatch(pend)
				pend[w] = b
			}
			b.Frames[b.N], b.Handles[b.N] = f, handles[i]
			b.N++
			if b.N == b.Cap() {
				d.send(w, b)
				pend[w] = nil
			}
		}
		clear(scratch[:k])
		for w, b := range pend {
			if b != nil {
				d.send(w, b)
				pend[w] = nil
			}
		}
		if err != nil {
			return fmt.Errorf("read frames: %w", err)
		}
	}
	return nil
}

// pendingBatch takes a free batch for runFlow. When none is free it first
// sends the partial batches it holds, so that a small pool cannot deadlock,
// then waits even if ctx is done: frames already read are never abandoned,
// and batches in flight always come back.
func (d *Dispatcher) pendingBatch(pend []*batch.Batch) *batch.Batch {
	if b, ok := d.Pool.TryGet(); ok {
		return b
	}
	for w, b := range pend {
		if b != nil {
			d.send(w, b)
			pend[w] = nil
		}
	}
	return d.Pool.Wait()
}

func outerHash(frame []byte) uint32 { return vxlan.OuterHash(frame, 0) }
