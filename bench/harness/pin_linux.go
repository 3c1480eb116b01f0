package harness

import "golang.org/x/sys/unix"

// pinThread sets the calling (locked) thread's affinity to cpu and
// returns a function that restores the affinity it had; call it before
// unlocking the thread, so that no other goroutine inherits the pin.
func pinThread(cpu int) (restore func()) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return func() {}
	}
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set)
	return func() { unix.SchedSetaffinity(0, &old) }
}
