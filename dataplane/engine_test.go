package dataplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"mflow/batch"
	"mflow/dataplane/memio"
	"mflow/steer"
	"mflow/vxlan"
)

// delayStage is a test stage that sleeps: a random share of batches for a
// random time up to max (other work, interrupts), and batch stallSeq for
// stall (a stalled worker). Delays are a pure function of (seed, Seq).
type delayStage struct {
	seed     uint64
	prob     float64
	max      time.Duration
	stallSeq uint64
	stall    time.Duration
	hold     chan struct{} // if set, batch stallSeq waits for it to close
}

func (s *delayStage) Process(b *batch.Batch) {
	if b.Seq == s.stallSeq {
		if s.hold != nil {
			<-s.hold
		}
		if s.stall > 0 {
			time.Sleep(s.stall)
		}
		return
	}
	r := rand.New(rand.NewPCG(s.seed, b.Seq))
	if s.prob > 0 && r.Float64() < s.prob {
		time.Sleep(time.Duration(r.Int64N(int64(s.max) + 1)))
	}
}

// orderCheck records what the sink sees and checks per-flow order (and,
// when global is set, order of the whole stream).
type orderCheck struct {
	global   bool
	lastFlow map[uint32]int64
	lastSeq  int64
	frames   uint64
	errs     []string
	// Reordering without a merger: backward jumps of the global sequence
	// (events) and frames delivered after a later one (late).
	events, late uint64
	maxSeen      int64
}

func newOrderCheck(global bool) *orderCheck {
	return &orderCheck{global: global, lastFlow: map[uint32]int64{}, lastSeq: -1, maxSeen: -1}
}

func (c *orderCheck) frame(inner []byte, vni uint32) {
	c.frames++
	flow, seq, fseq, ok := stamp(inner)
	if !ok || vni != testVNI {
		c.fail("frame %d: bad inner frame (len %d) or VNI %d", c.frames, len(inner), vni)
		return
	}
	if int64(seq) < c.lastSeq {
		c.events++
	}
	if int64(seq) < c.maxSeen {
		c.late++
	}
	c.maxSeen = max(c.maxSeen, int64(seq))
	if c.global && int64(seq) <= c.lastSeq {
		c.fail("stream order: seq %d after %d", seq, c.lastSeq)
	}
	c.lastSeq = int64(seq)
	last, seen := c.lastFlow[flow]
	if seen && int64(fseq) <= last {
		c.fail("flow %d order: seq %d after %d", flow, fseq, last)
	}
	c.lastFlow[flow] = int64(fseq)
}

func (c *orderCheck) fail(format string, args ...any) {
	if len(c.errs) < 10 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// checkGoroutines fails tb if more goroutines than before remain shortly
// after a run.
func checkGoroutines(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			tb.Fatalf("goroutines: %d before the run, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// checkConservation checks the engine's and the source's books after Run.
func checkConservation(tb testing.TB, e *Engine, src *memio.Source, sink *memio.Sink) Stats {
	tb.Helper()
	st := e.Stats()
	if st.InFlight != 0 || st.Received != st.Delivered+st.DroppedTotal() {
		tb.Errorf("conservation: received %d != delivered %d + dropped %d (in flight %d)",
			st.Received, st.Delivered, st.DroppedTotal(), st.InFlight)
	}
	if st.Received != src.Produced() || st.Released != st.Received || src.Released() != st.Received {
		tb.Errorf("frames: source produced %d, engine received %d and released %d, source got back %d",
			src.Produced(), st.Received, st.Released, src.Released())
	}
	if n := src.Outstanding(); n != 0 {
		tb.Errorf("%d frames never returned to the source", n)
	}
	if err := src.Err(); err != nil {
		tb.Errorf("source ownership: %v", err)
	}
	if sink.Frames() != st.Delivered {
		tb.Errorf("sink got %d frames, engine delivered %d", sink.Frames(), st.Delivered)
	}
	var perWorker uint64
	for _, n := range st.WorkerPackets {
		perWorker += n
	}
	if perWorker != st.Received {
		tb.Errorf("worker packets sum to %d, received %d", perWorker, st.Received)
	}
	return st
}

// TestPropertyOrderAndConservation runs many random configurations with
// random worker delays, one long-stalled batch and random drops, and checks
// zero reordering at the sink and conservation by reason.
func TestPropertyOrderAndConservation(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 1))
		policy := steer.Microflow // half the runs; the others spread over all policies
		if r.IntN(2) == 0 {
			policy = steer.Policies()[r.IntN(4)]
		}
		cfg := Config{
			Policy:      policy,
			Workers:     1 + r.IntN(8),
			Batch:       1 + r.IntN(1<<r.IntN(11)), // 1..1024, log-uniform scale
			Depth:       1 + r.IntN(6),
			LeastLoaded: r.IntN(2) == 0,
			HashSeed:    r.Uint32(),
		}
		if r.IntN(2) == 0 {
			cfg.Inline = 1 + r.IntN(cfg.Batch)
		}
		cfg.Pool = cfg.Workers + 1 + r.IntN(3*cfg.Workers+4)
		count := uint64(min(max(3000, 3*cfg.Pool*cfg.Batch), 30000))
		flows := 1 + r.IntN(16)
		name := fmt.Sprintf("seed=%d/%v/w=%d/b=%d/pool=%d/depth=%d/ll=%v/inline=%d/flows=%d",
			seed, policy, cfg.Workers, cfg.Batch, cfg.Pool, cfg.Depth, cfg.LeastLoaded, cfg.Inline, flows)
		t.Run(name, func(t *testing.T) {
			tr := newTraffic(t, flows, 0.05*r.Float64(), seed)
			src, err := memio.NewSource(memio.SourceConfig{
				Buffers: 1 + r.IntN(cfg.Pool*cfg.Batch+64), FrameSize: 256,
				Count: count, Gen: tr.gen, Burst: r.IntN(2) * r.IntN(2048),
			})
			if err != nil {
				t.Fatal(err)
			}
			check := newOrderCheck(policy != steer.Flow)
			sink := &memio.Sink{Frame: check.frame}
			cfg.Stages = []Stage{
				&DecapStage{},
				&delayStage{seed: seed, prob: 0.2, max: 200 * time.Microsecond,
					stallSeq: uint64(r.IntN(8)), stall: 20 * time.Millisecond},
			}
			before := runtime.NumGoroutine()
			e, err := New(src, sink, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v", err)
			}
			checkGoroutines(t, before)
			st := checkConservation(t, e, src, sink)
			if st.Received != count {
				t.Errorf("received %d frames, want %d", st.Received, count)
			}
			for reason := range vxlan.NumReasons {
				if got, want := st.Dropped[reason], tr.want[reason]; got != want {
					t.Errorf("dropped %v: got %d, want %d", reason, got, want)
				}
			}
			if st.Dropped[DropSinkError] != 0 {
				t.Errorf("sink errors: %d", st.Dropped[DropSinkError])
			}
			for _, msg := range check.errs {
				t.Error(msg)
			}
			if policy == steer.Microflow && st.Merger.Released+st.InlineBatches != st.Batches {
				t.Errorf("merger released %d batches and %d went inline, dispatcher sent %d", st.Merger.Released, st.InlineBatches, st.Batches)
			}
			if st.Merger.MaxDepth > cfg.Depth {
				t.Errorf("merger queue depth %d exceeds bound %d", st.Merger.MaxDepth, cfg.Depth)
			}
		})
	}
}

// TestInlineSwitches: with Config.Inline, microflow switches between
// processing on the dispatcher (a shallow read, nothing in flight) and
// handing micro-flows to workers (a backlog), at points forced at random:
// random read sizes and random worker and sink delays. Every frame
// arrives, in its flow's order, and both ways were taken.
func TestInlineSwitches(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			const count = 20000
			tr := newTraffic(t, 1+r.IntN(4), 0.02, seed)
			sizes := rand.New(rand.NewPCG(seed, 8))
			var e *Engine // for the source's pauses
			src, err := memio.NewSource(memio.SourceConfig{Buffers: 4096, FrameSize: 256, Count: count, Gen: tr.gen,
				BurstOf: func(k uint64) int {
					if k%16 == 0 && e != nil {
						// A pause until the pipeline has drained, then a
						// shallow read: the inline way, however slow the
						// workers are (the race detector).
						for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(200 * time.Microsecond) {
							if st := e.Stats(); st.Released == st.Received {
								break
							}
						}
						return 1 + sizes.IntN(4)
					}
					if sizes.IntN(2) == 0 {
						return 1 + sizes.IntN(4) // shallow
					}
					return 1 + sizes.IntN(256)
				}})
			if err != nil {
				t.Fatal(err)
			}
			check := newOrderCheck(true)
			slow := rand.New(rand.NewPCG(seed, 9))
			sink := &memio.Sink{Frame: check.frame, Fail: func(*batch.Batch) error {
				if slow.IntN(20) == 0 {
					time.Sleep(time.Duration(slow.IntN(300)) * time.Microsecond)
				}
				return nil
			}}
			cfg := Config{Policy: steer.Microflow, Workers: 1 + r.IntN(4), Batch: 256, Inline: 4,
				Stages: []Stage{&DecapStage{}, &delayStage{seed: seed, prob: 0.1, max: 100 * time.Microsecond}}}
			e, err = New(src, sink, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := checkConservation(t, e, src, sink)
			for _, msg := range check.errs {
				t.Error(msg)
			}
			if st.Received != count || st.InlineBatches == 0 || st.InlineBatches == st.Batches {
				t.Errorf("received %d of %d; %d of %d batches inline: want some of both", st.Received, count, st.InlineBatches, st.Batches)
			}
			if st.Merger.Released+st.InlineBatches != st.Batches {
				t.Errorf("merger released %d, inline %d, dispatched %d", st.Merger.Released, st.InlineBatches, st.Batches)
			}
		})
	}
}

// runUnordered runs a microflow engine without its merger over a stream of
// count frames and returns what the sink saw.
func runUnordered(tb testing.TB, batch, workers int, count uint64, seed uint64) (*orderCheck, Stats) {
	tb.Helper()
	tr := newTraffic(tb, 1, 0, seed)
	src, err := memio.NewSource(memio.SourceConfig{Buffers: 8192, FrameSize: 256, Count: count, Gen: tr.gen})
	if err != nil {
		tb.Fatal(err)
	}
	check := newOrderCheck(false)
	sink := &memio.Sink{Frame: check.frame}
	e, err := New(src, sink, Config{
		Policy: steer.Microflow, Workers: workers, Batch: batch, Unordered: true,
		Stages: []Stage{&DecapStage{}, &delayStage{seed: seed, prob: 0.2, max: 100 * time.Microsecond, stallSeq: ^uint64(0)}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return check, checkConservation(tb, e, src, sink)
}

// TestUnorderedReorders shows what the merger prevents: without it, the
// stream is reordered, only at batch boundaries, and less with larger
// batches (the shape of the paper's Fig. 7).
func TestUnorderedReorders(t *testing.T) {
	const count = 8192
	var events []uint64
	for _, batch := range []int{1, 256} {
		check, st := runUnordered(t, batch, 4, count, 1)
		t.Logf("batch %4d: %d batches, %d backward jumps, %d late frames", batch, st.Batches, check.events, check.late)
		if check.events > st.Batches {
			t.Errorf("batch %d: %d backward jumps but only %d batches: reordering inside a batch", batch, check.events, st.Batches)
		}
		events = append(events, check.events)
	}
	if events[0] == 0 || events[0] <= events[1] {
		t.Errorf("backward jumps: batch 1: %d, batch 256: %d; want more with batch 1, and some", events[0], events[1])
	}
}

// TestCancelDrains cancels endless traffic mid-stream for every policy and
// checks that nothing is lost and no goroutine remains.
func TestCancelDrains(t *testing.T) {
	for _, policy := range steer.Policies() {
		t.Run(policy.String(), func(t *testing.T) {
			tr := newTraffic(t, 4, 0.02, 3)
			src, err := memio.NewSource(memio.SourceConfig{Buffers: 2048, FrameSize: 256, Gen: tr.gen})
			if err != nil {
				t.Fatal(err)
			}
			check := newOrderCheck(policy != steer.Flow)
			sink := &memio.Sink{Frame: check.frame}
			before := runtime.NumGoroutine()
			e, err := New(src, sink, Config{Policy: policy, Workers: 3, Batch: 32,
				Stages: []Stage{&DecapStage{}, &delayStage{seed: 3, prob: 0.3, max: 50 * time.Microsecond, stallSeq: ^uint64(0)}}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			for e.Stats().Delivered < 2000 {
				time.Sleep(time.Millisecond)
			}
			if st := e.Stats(); st.Received < st.Delivered+st.DroppedTotal() {
				t.Errorf("live snapshot: received %d < delivered %d + dropped %d", st.Received, st.Delivered, st.DroppedTotal())
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			checkGoroutines(t, before)
			st := checkConservation(t, e, src, sink)
			for reason := range vxlan.NumReasons {
				if st.Dropped[reason] != tr.want[reason] {
					t.Errorf("dropped %v: got %d, want %d", reason, st.Dropped[reason], tr.want[reason])
				}
			}
			for _, msg := range check.errs {
				t.Error(msg)
			}
		})
	}
}

// TestStalledWorkerBackPressure holds one micro-flow in a worker and checks
// that the dispatcher stops reading (bounded memory) instead of queueing.
func TestStalledWorkerBackPressure(t *testing.T) {
	tr := newTraffic(t, 1, 0, 5)
	src, err := memio.NewSource(memio.SourceConfig{Buffers: 8192, FrameSize: 256, Gen: tr.gen})
	if err != nil {
		t.Fatal(err)
	}
	check := newOrderCheck(true)
	sink := &memio.Sink{Frame: check.frame}
	hold := make(chan struct{})
	cfg := Config{Policy: steer.Microflow, Workers: 3, Batch: 16, Pool: 10, Depth: 2,
		Stages: []Stage{&DecapStage{}, &delayStage{stallSeq: 4, hold: hold}}}
	e, err := New(src, sink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// Wait until the dispatcher has stopped reading.
	var last uint64
	stable := 0
	for deadline := time.Now().Add(10 * time.Second); stable < 20; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher still reading while a worker is stalled: %+v", e.Stats())
		}
		if r := e.Stats().Received; r == last && r > 0 {
			stable++
		} else {
			last, stable = r, 0
		}
	}
	st := e.Stats()
	if bound := uint64(cfg.Pool * cfg.Batch); st.InFlight > bound || uint64(src.Outstanding()) > bound {
		t.Errorf("in flight %d, outstanding %d: beyond the pool's %d frames", st.InFlight, src.Outstanding(), bound)
	}
	if st.Delivered > 4*uint64(cfg.Batch) {
		t.Errorf("delivered %d frames past the stalled micro-flow 4", st.Delivered)
	}
	close(hold)
	for e.Stats().Delivered < st.Received+1000 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkConservation(t, e, src, sink)
	for _, msg := range check.errs {
		t.Error(msg)
	}
	if e.Stats().Merger.Waits == 0 {
		t.Error("merger never waited, yet a worker was stalled")
	}
}

// TestSinkErrors counts a failing sink's frames as dropped.
func TestSinkErrors(t *testing.T) {
	tr := newTraffic(t, 2, 0, 9)
	src, err := memio.NewSource(memio.SourceConfig{Buffers: 512, FrameSize: 256, Count: 5000, Gen: tr.gen})
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Uint64
	sink := &memio.Sink{Fail: func(b *batch.Batch) error {
		if b.Seq%3 == 0 {
			failed.Add(uint64(b.Delivered))
			return errors.New("write tap: device gone")
		}
		return nil
	}}
	e, err := New(src, sink, Config{Policy: steer.Microflow, Workers: 2, Batch: 64, Stages: []Stage{&DecapStage{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := checkConservation(t, e, src, sink)
	if st.Dropped[DropSinkError] != failed.Load() || failed.Load() == 0 {
		t.Errorf("sink_error drops %d, failed frames %d", st.Dropped[DropSinkError], failed.Load())
	}
}
