package spin

import "golang.org/x/sys/unix"

// yieldThread gives the CPU to another runnable thread, if any.
func yieldThread() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
