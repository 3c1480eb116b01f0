package harness

import "golang.org/x/sys/unix"

// pinThread sets the calling (locked) thread's affinity to cpu.
func pinThread(cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set)
}
