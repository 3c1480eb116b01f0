package dataplane

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// pinThread locks the calling goroutine to its OS thread and restricts that
// thread to cpu. The returned function restores the thread's previous
// affinity and unlocks it; call it on the same goroutine.
func pinThread(cpu int) (restore func(), err error) {
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("get CPU affinity: %w", err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return func() {
		// If restoring fails the thread keeps the narrow mask; do not
		// hand it back to the Go scheduler then.
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}

// checkAffinity verifies that every CPU named in a is one this process may
// run on.
func checkAffinity(a *Affinity) error {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("get CPU affinity: %w", err)
	}
	check := func(what string, cpu int) error {
		if cpu == NoCPU {
			return nil
		}
		if cpu < 0 || cpu >= len(allowed)*64 || !allowed.IsSet(cpu) {
			return fmt.Errorf("check affinity: %s CPU %d is not available to this process", what, cpu)
		}
		return nil
	}
	if err := check("dispatcher", cpuOf(a.Dispatcher)); err != nil {
		return err
	}
	if err := check("output", cpuOf(a.Output)); err != nil {
		return err
	}
	for i, c := range a.Workers {
		if err := check(fmt.Sprintf("worker %d", i), c); err != nil {
			return err
		}
	}
	return nil
}
