package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"mflow/batch"
	"mflow/reorder"
	"mflow/steer"
	"mflow/vxlan"
)

// Sink is where delivered frames go (a TAP or veth writer, an in-memory
// fake). The engine calls Write from one goroutine at a time.
type Sink interface {
	// Write delivers b.Out[:b.Delivered], with b.VNI[i] the network of
	// frame i. It must not retain any frame or the batch after it
	// returns: the frames go back to their source right after. An error
	// counts the batch's frames as dropped (DropSinkError); the engine
	// keeps running.
	Write(b *batch.Batch) error
}

// NoCPU in Affinity.Workers means "do not pin this worker".
const NoCPU = -1

// Affinity pins the engine's goroutines to CPUs. Each pinned goroutine
// locks its OS thread, sets that thread's affinity and restores both when
// it exits. A nil Dispatcher or Output, a worker set to NoCPU and a worker
// beyond len(Workers) are not pinned: the zero value pins nothing.
type Affinity struct {
	// Dispatcher is the CPU of the goroutine that reads the source (and,
	// with steer.Single, does everything).
	Dispatcher *int
	// Workers[i] is the CPU of worker i (steer.Pipeline: the decap
	// goroutine is the dispatcher; it uses Dispatcher).
	Workers []int
	// Output is the CPU of the goroutine that merges and writes to the
	// sink.
	Output *int
}

// CPU returns a pointer to n, for Affinity's fields.
func CPU(n int) *int { return &n }

// cpuOf is the CPU a field names, or NoCPU.
func cpuOf(p *int) int {
	if p == nil {
		return NoCPU
	}
	return *p
}

// Config is an engine's configuration. The zero value is usable: steer.Single
// with batches of steer.DefaultBatch frames and no stage (frames pass
// through unchanged).
type Config struct {
	// Policy is the steering policy.
	Policy steer.Policy
	// Workers is the number of parallel workers for steer.Flow and
	// steer.Microflow (default 1).
	Workers int
	// Batch is the batch (micro-flow) size in frames (default
	// steer.DefaultBatch).
	Batch int
	// Pool is the number of batches in flight, the bound on memory
	// (default 4 per worker plus 4).
	Pool int
	// Depth bounds each worker's input queue and merger queue in batches
	// (default 4).
	Depth int
	// LeastLoaded sends each micro-flow to the worker with the shortest
	// queue instead of round robin (steer.Microflow only).
	LeastLoaded bool
	// Unordered bypasses the merger in steer.Microflow: batches reach the
	// sink in completion order. For experiments only (the reordering it
	// causes is the paper's Fig. 7).
	Unordered bool
	// HashSeed seeds the outer flow hash of steer.Flow.
	HashSeed uint32
	// Inline, when not 0, lets steer.Microflow (with the merger) skip the
	// hand-offs when there is no queue: a batch of at most Inline frames
	// read while every earlier batch has been written is processed and
	// written by the dispatcher itself, the way steer.Single does, so a
	// lone request does not wait for a worker's and the merger's
	// wake-ups. Order is kept: nothing is in flight when it happens, and
	// the next batch is read only after it. Counted in
	// Stats.InlineBatches.
	Inline int
	// Stages run in order on every batch (for example a *DecapStage).
	Stages []Stage
	// Affinity, when not nil, pins the goroutines to CPUs.
	Affinity *Affinity
}

// Engine runs one receive path: source → dispatcher → workers → merger →
// sink. Create it with New and call Run once.
//
// The zero value is not usable. Stats is safe for concurrent use, also
// while Run runs; the other methods are not.
type Engine struct {
	cfg    Config
	src    steer.Source
	sink   Sink
	pool   *batch.Pool
	disp   steer.Dispatcher
	merger *reorder.Merger[*batch.Batch]
	in     []chan *batch.Batch // per-worker input queues
	out    chan *batch.Batch   // fan-in to the output goroutine (no merger)

	workers []workerCounters // per worker, written by that worker

	// Written by the output goroutine (and by the dispatcher for inline
	// batches, never at the same time).
	delivered      atomic.Uint64
	deliveredBytes atomic.Uint64
	released       atomic.Uint64
	sinkDrops      atomic.Uint64
	outBatches     atomic.Uint64 // batches the merger handed to output

	// The dispatcher's own (Config.Inline).
	assigned uint64        // batches handed to workers
	inline   atomic.Uint64 // batches processed on the dispatcher

	running atomic.Bool
}

// workerCounters are one worker's counters, padded to their own cache lines.
type workerCounters struct {
	packets atomic.Uint64
	drops   [vxlan.NumReasons]atomic.Uint64
	_       [128 - (1+vxlan.NumReasons)*8%128]byte
}

// New returns an engine that reads src and writes sink.
func New(src steer.Source, sink Sink, cfg Config) (*Engine, error) {
	if src == nil || sink == nil {
		return nil, errors.New("create engine: source and sink are required")
	}
	if cfg.Policy != steer.Single && cfg.Policy != steer.Flow &&
		cfg.Policy != steer.Pipeline && cfg.Policy != steer.Microflow {
		return nil, fmt.Errorf("create engine: %w: %v", steer.ErrUnknownPolicy, cfg.Policy)
	}
	if cfg.Workers < 0 || cfg.Batch < 0 || cfg.Pool < 0 || cfg.Depth < 0 {
		return nil, errors.New("create engine: negative workers, batch, pool or depth")
	}
	if cfg.Workers == 0 || cfg.Policy == steer.Single || cfg.Policy == steer.Pipeline {
		cfg.Workers = 1
	}
	if cfg.Batch == 0 {
		cfg.Batch = steer.DefaultBatch
	}
	if cfg.Depth == 0 {
		cfg.Depth = 4
	}
	if cfg.Pool == 0 {
		cfg.Pool = 4*cfg.Workers + 4
	}
	if cfg.Affinity != nil {
		if err := checkAffinity(cfg.Affinity); err != nil {
			return nil, fmt.Errorf("create engine: %w", err)
		}
	}
	pool, err := batch.NewPool(cfg.Pool, cfg.Batch)
	if err != nil {
		return nil, fmt.Errorf("create engine: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		src:     src,
		sink:    sink,
		pool:    pool,
		workers: make([]workerCounters, cfg.Workers),
	}
	e.disp = steer.Dispatcher{Policy: cfg.Policy, Workers: cfg.Workers, Pool: pool, Source: src}
	if cfg.Policy == steer.Flow {
		seed := cfg.HashSeed
		e.disp.Hash = func(f []byte) uint32 { return vxlan.OuterHash(f, seed) }
	}
	switch cfg.Policy {
	case steer.Single:
		e.disp.Send = func(_ int, b *batch.Batch) {
			e.process(0, b)
			e.output(b)
		}
	case steer.Pipeline:
		e.out = make(chan *batch.Batch, cfg.Depth)
		e.disp.Send = func(_ int, b *batch.Batch) {
			e.process(0, b)
			e.out <- b
		}
	default:
		e.in = make([]chan *batch.Batch, cfg.Workers)
		for i := range e.in {
			e.in[i] = make(chan *batch.Batch, cfg.Depth)
		}
		if cfg.Policy == steer.Microflow && !cfg.Unordered {
			e.merger, err = reorder.New[*batch.Batch](cfg.Workers, cfg.Depth, cfg.Pool)
			if err != nil {
				return nil, fmt.Errorf("create engine: %w", err)
			}
			e.disp.Send = func(w int, b *batch.Batch) {
				// Nothing in flight (every batch handed out has been
				// written) and a shallow batch: no hand-off.
				if b.N <= e.cfg.Inline && e.outBatches.Load() == e.assigned {
					e.inline.Add(1)
					e.process(w, b)
					e.output(b)
					return
				}
				e.assigned++
				e.merger.Assign(w)
				e.in[w] <- b
			}
		} else {
			e.out = make(chan *batch.Batch, cfg.Depth*cfg.Workers)
			e.disp.Send = func(w int, b *batch.Batch) { e.in[w] <- b }
		}
		if cfg.LeastLoaded && cfg.Policy == steer.Microflow {
			e.disp.Load = func(w int) int { return len(e.in[w]) }
		}
	}
	return e, nil
}

// Config returns the configuration in use, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Run moves frames from the source to the sink until ctx is done, the
// source ends (io.EOF) or fails. Then it drains: it stops reading, and every
// frame already read is delivered or dropped with a reason, and returned to
// the source, before Run returns. No goroutine started by Run outlives it.
// It returns nil after a cancel or the end of the source, and otherwise the
// source's error (and any pinning error), wrapped.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("run engine: already run")
	}
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		pinErrs []error
	)
	pinned := func(cpu int, fn func()) {
		if e.cfg.Affinity == nil || cpu < 0 {
			fn()
			return
		}
		restore, err := pinThread(cpu)
		if err != nil {
			errMu.Lock()
			pinErrs = append(pinErrs, err)
			errMu.Unlock()
			fn()
			return
		}
		defer restore()
		fn()
	}
	aff := e.cfg.Affinity
	if aff == nil {
		aff = &Affinity{}
	}

	// Output goroutine: merger or fan-in, then the sink.
	outputDone := make(chan struct{})
	if e.cfg.Policy != steer.Single {
		go func() {
			defer close(outputDone) // after the affinity is restored
			pinned(cpuOf(aff.Output), e.drainOutput)
		}()
	} else {
		close(outputDone)
	}
	// Workers.
	for w := range e.in {
		cpu := NoCPU
		if w < len(aff.Workers) {
			cpu = aff.Workers[w]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinned(cpu, func() { e.work(w) })
		}()
	}
	// Dispatcher, on this goroutine.
	var err error
	pinned(cpuOf(aff.Dispatcher), func() { err = e.disp.Run(ctx) })

	// Drain: no more input; workers finish what they hold, then the output.
	for _, c := range e.in {
		close(c)
	}
	if e.merger != nil {
		e.merger.Close()
	}
	wg.Wait()
	if e.out != nil {
		close(e.out)
	}
	<-outputDone
	if err != nil {
		err = fmt.Errorf("run engine: %w", err)
	}
	return errors.Join(append([]error{err}, pinErrs...)...)
}

// drainOutput is the output goroutine's loop: it takes batches from the
// merger (in sequence order) or the fan-in (in completion order) until the
// workers are done, and writes them.
func (e *Engine) drainOutput() {
	if e.merger == nil {
		for b := range e.out {
			e.output(b)
		}
		return
	}
	for {
		b, ok := e.merger.Next()
		if !ok {
			return
		}
		e.output(b)
		e.outBatches.Add(1) // after the write: the dispatcher may write next
	}
}

// work is worker w's loop.
func (e *Engine) work(w int) {
	for b := range e.in[w] {
		e.process(w, b)
		if e.merger != nil {
			e.merger.Push(w, b)
		} else {
			e.out <- b
		}
	}
}

// process runs the stages on b and sets aside its dropped frames, counting
// them by reason. The batch moves on even when every frame was dropped.
func (e *Engine) process(w int, b *batch.Batch) {
	b.Begin()
	for _, s := range e.cfg.Stages {
		s.Process(b)
	}
	var drops [vxlan.NumReasons]uint64
	c := &e.workers[w]
	if b.Partition(&drops) > 0 {
		for r, n := range drops {
			if n != 0 {
				c.drops[r].Add(n)
			}
		}
	}
	c.packets.Add(uint64(b.N))
}

// output writes b's delivered frames to the sink, returns all of its frames
// to the source and the batch to the pool.
func (e *Engine) output(b *batch.Batch) {
	if b.Delivered > 0 {
		if err := e.sink.Write(b); err != nil {
			e.sinkDrops.Add(uint64(b.Delivered))
		} else {
			var bytes uint64
			for _, f := range b.Out[:b.Delivered] {
				bytes += uint64(len(f))
			}
			e.deliveredBytes.Add(bytes)
			e.delivered.Add(uint64(b.Delivered))
		}
	}
	e.src.Release(b.Handles[:b.N])
	e.released.Add(uint64(b.N))
	e.pool.Put(b)
}
