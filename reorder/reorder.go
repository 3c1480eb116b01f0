// Package reorder is mflow's merger: it puts the batches of one stream,
// processed out of order by parallel workers, back into the order in which
// the dispatcher cut them (MFLOW's batch-based flow reassembling, paper
// §III-B).
//
// Data flow:
//
//	dispatcher ── Assign(w) ──► order FIFO (one worker id per batch, in sequence order)
//	     └────── batch k ──► worker w ── Push(w, batch) ──► queue[w] (bounded FIFO)
//	merger goroutine: Next() reads the next worker id from the order FIFO (the
//	merging counter) and takes the head of that worker's queue.
//
// Each worker handles its batches in the order it got them, so the head of
// queue[w] is always the oldest batch of w; the order FIFO says which queue
// holds the next sequence number, whatever policy (round robin, least
// loaded) chose the worker. Nothing is searched and nothing is sorted: one
// channel receive per batch from the order FIFO, one from the queue.
//
// Memory is bounded: Assign blocks once window batches are outstanding and
// Push blocks while a worker's queue holds depth batches, so a stalled
// worker back-pressures its producer instead of growing a queue. The merger
// never waits for a batch that cannot come as long as every assigned batch
// is eventually pushed (callers push a batch even when all of its packets
// were dropped).
//
// The merger knows nothing about packets: it moves values of any type T.
package reorder

import (
	"fmt"
	"sync/atomic"
)

// Merger releases values pushed by parallel workers strictly in the order
// in which they were assigned.
//
// The zero value is not usable; create one with New. Concurrency: Assign and
// Close are called by one goroutine (the dispatcher), Push(w, …) by the
// goroutines that handle worker w's batches in assignment order (normally
// one goroutine per w), Next by one goroutine (the merger), and Stats by any
// goroutine at any time.
type Merger[T any] struct {
	order  chan int32 // worker ids in sequence order; written by Assign, read by Next
	queues []chan T   // per-worker completed values; written by Push, read by Next

	// Written only by the Next goroutine, read atomically by Stats.
	released atomic.Uint64
	waits    atomic.Uint64
	maxDepth atomic.Int64
}

// Stats is a snapshot of a Merger's counters.
type Stats struct {
	// Released counts values handed out by Next, i.e. the merging counter.
	Released uint64
	// Waits counts the times Next found the queue holding the next
	// sequence number empty and had to wait for its worker.
	Waits uint64
	// MaxDepth is the deepest any worker queue was when Next looked at it.
	MaxDepth int
}

// New returns a Merger for workers workers. depth bounds each worker's
// queue of completed values; window bounds the number of values assigned
// and not yet released (normally the size of the batch pool, so that Assign
// never blocks). Both must be at least 1.
func New[T any](workers, depth, window int) (*Merger[T], error) {
	if workers < 1 || workers > 1<<20 {
		return nil, fmt.Errorf("create merger: %d workers out of range", workers)
	}
	if depth < 1 || window < 1 {
		return nil, fmt.Errorf("create merger: depth %d and window %d must be positive", depth, window)
	}
	m := &Merger[T]{
		order:  make(chan int32, window),
		queues: make([]chan T, workers),
	}
	for i := range m.queues {
		m.queues[i] = make(chan T, depth)
	}
	return m, nil
}

// Workers returns the number of workers the Merger was created for.
func (m *Merger[T]) Workers() int { return len(m.queues) }

// Assign records that the next sequence number goes to worker w. Call it
// before handing the value to the worker. It blocks while window values are
// outstanding.
func (m *Merger[T]) Assign(w int) {
	m.order <- int32(w)
}

// Close says that no more values will be assigned. Next returns ok == false
// once every value assigned before Close has been released.
func (m *Merger[T]) Close() { close(m.order) }

// Push queues worker w's completed value v. Values of one worker must be
// pushed in the order in which they were assigned to it. Push blocks while
// the worker's queue is full (back-pressure).
func (m *Merger[T]) Push(w int, v T) { m.queues[w] <- v }

// Len returns the number of completed values waiting in worker w's queue.
func (m *Merger[T]) Len(w int) int { return len(m.queues[w]) }

// Next returns the value with the next sequence number, waiting for its
// worker if needed. It returns ok == false after Close, once all values
// have been released.
func (m *Merger[T]) Next() (v T, ok bool) {
	w, ok := <-m.order
	if !ok {
		return v, false
	}
	q := m.queues[w]
	if d := int64(len(q)); d > m.maxDepth.Load() {
		m.maxDepth.Store(d)
	}
	select {
	case v = <-q:
	default:
		m.waits.Add(1)
		v = <-q
	}
	m.released.Add(1)
	return v, true
}

// Stats returns a snapshot of the counters.
func (m *Merger[T]) Stats() Stats {
	return Stats{
		Released: m.released.Load(),
		Waits:    m.waits.Load(),
		MaxDepth: int(m.maxDepth.Load()),
	}
}
