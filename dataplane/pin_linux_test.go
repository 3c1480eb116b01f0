package dataplane

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"mflow/batch"
	"mflow/dataplane/memio"
	"mflow/steer"
)

// affinityStage records, on worker 0, whether the thread running it is
// pinned to exactly cpu.
type affinityStage struct {
	cpu       int
	pinned    atomic.Int32 // batches seen pinned
	notPinned atomic.Int32
}

func (s *affinityStage) Process(b *batch.Batch) {
	if b.Worker != 0 {
		return
	}
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil && set.Count() == 1 && set.IsSet(s.cpu) {
		s.pinned.Add(1)
	} else {
		s.notPinned.Add(1)
	}
}

// TestPinning runs an engine with pinned goroutines, checks from inside a
// worker that its thread is pinned, that the caller's thread gets its
// affinity back, and that New rejects a CPU the process may not use.
func TestPinning(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Skipf("cannot read CPU affinity: %v", err)
	}
	var cpus []int
	for c := 0; c < len(allowed)*64 && len(cpus) < 2; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	last := cpus[len(cpus)-1]
	src, err := memio.NewSource(memio.SourceConfig{Templates: templates(t, 2, 64), Count: 20000})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memio.Sink{}
	stage := &affinityStage{cpu: last}
	aff := &Affinity{Dispatcher: CPU(cpus[0]), Output: CPU(last), Workers: []int{last, NoCPU}}
	e, err := New(src, sink, Config{Policy: steer.Microflow, Workers: 2, Batch: 32, Affinity: aff,
		Stages: []Stage{&DecapStage{}, stage}})
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var after unix.CPUSet
	if err := unix.SchedGetaffinity(0, &after); err != nil || after != allowed {
		t.Errorf("caller's thread affinity after Run: %v (err %v), want it restored", after.Count(), err)
	}
	checkConservation(t, e, src, sink)
	if stage.pinned.Load() == 0 || stage.notPinned.Load() != 0 {
		t.Errorf("worker 0 ran %d batches pinned to CPU %d and %d not", stage.pinned.Load(), last, stage.notPinned.Load())
	}
	if _, err := New(src, sink, Config{Affinity: &Affinity{Dispatcher: CPU(4096)}}); err == nil {
		t.Error("New accepted CPU 4096")
	}
}
