package dataplane

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"mflow/batch"
	"mflow/dataplane/memio"
	"mflow/steer"
)

// mallocsForRun returns the heap allocations made while an engine moves
// count frames (setup excluded).
func mallocsForRun(t *testing.T, cfg Config, count uint64, frames [][]byte) uint64 {
	t.Helper()
	src, err := memio.NewSource(memio.SourceConfig{Buffers: 4096, FrameSize: 256, Count: count, Templates: frames})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memio.Sink{}
	e, err := New(src, sink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := sink.Frames(); got != count {
		t.Fatalf("delivered %d frames, want %d", got, count)
	}
	return after.Mallocs - before.Mallocs
}

// TestZeroAllocsPerPacket checks that the steady state allocates nothing:
// moving ten times more frames through a running engine costs no more
// allocations than the fixed cost of starting and stopping it. With 64-frame
// batches, an allocation per batch would show as thousands.
func TestZeroAllocsPerPacket(t *testing.T) {
	frames := templates(t, 4, 64)
	for _, policy := range steer.Policies() {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := Config{Policy: policy, Workers: 2, Batch: 64, Stages: []Stage{&DecapStage{}, &ChecksumStage{}}}
			const small, large = 20000, 220000
			mallocsForRun(t, cfg, small, frames) // warm up
			a := mallocsForRun(t, cfg, small, frames)
			b := mallocsForRun(t, cfg, large, frames)
			extra := int64(b) - int64(a)
			perPacket := float64(extra) / float64(large-small)
			t.Logf("%d allocations for %d frames, %d for %d: %.5f per extra frame", a, small, b, large, perPacket)
			// Allow some runtime noise (GC, timers), far below one per batch.
			if extra > 100 {
				t.Errorf("%d extra allocations for %d extra frames (%.4f per frame, %.2f per batch)",
					extra, large-small, perPacket, perPacket*64)
			}
		})
	}
}

// TestStageAllocs checks the stages and the per-batch work of a worker.
func TestStageAllocs(t *testing.T) {
	frames := templates(t, 4, 64)
	src, err := memio.NewSource(memio.SourceConfig{Templates: frames})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(src, &memio.Sink{}, Config{Batch: 64, Stages: []Stage{&DecapStage{}, &ChecksumStage{Rounds: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	b := batch.NewBatch(64)
	allocs := testing.AllocsPerRun(200, func() {
		b.N = copy(b.Frames, frames)
		e.process(0, b)
	})
	if allocs != 0 {
		t.Errorf("process allocates %.1f times per batch", allocs)
	}
	if b.Delivered != 64 {
		t.Errorf("delivered %d of 64 valid frames: %s", b.Delivered, fmt.Sprint(e.Stats().Dropped))
	}
}
