package daemon

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// hinted is an error with a message of its own that still unwraps to the
// error it explains.
type hinted struct {
	msg string
	err error
}

func (h *hinted) Error() string { return h.msg }
func (h *hinted) Unwrap() error { return h.err }

// memlockHint is the advice cilium/ebpf appends to every EPERM from the
// bpf syscall, misleading when a capability is what is missing.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// explainSetup turns a setup error caused by a missing privilege or limit
// into one that says which, and what to do (docs/OPERATIONS.md §2):
// a permission error while capabilities mflow needs are missing names
// them (and drops the library's guess that MEMLOCK is too low); ENOBUFS
// from registering the UMEM names RLIMIT_MEMLOCK and how to raise it.
// Other errors are returned as they are.
func explainSetup(err error) error {
	if err == nil {
		return nil
	}
	// The hint goes first: the step that failed follows, and after it
	// whatever the lower layers tried.
	lead := func(hint string) error {
		detail := strings.ReplaceAll(err.Error(), memlockHint, "")
		if errors.Is(err, ErrSetup) {
			detail = strings.TrimPrefix(detail, ErrSetup.Error()+": ")
			hint = ErrSetup.Error() + ": " + hint
		}
		return &hinted{err: err, msg: hint + "; the step that failed: " + detail}
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		if missing := missingCaps(); len(missing) > 0 {
			return lead(fmt.Sprintf("the process lacks %s: run mflow as root or grant them (AmbientCapabilities= in the systemd unit, see examples/mflow.service)",
				strings.Join(missing, ", ")))
		}
	}
	if errors.Is(err, unix.ENOBUFS) && strings.Contains(err.Error(), "umem") && !hasCap(capIPCLock) {
		var r unix.Rlimit
		limit := "unknown"
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r) == nil {
			limit = fmtLimit(r.Cur)
		}
		return lead(fmt.Sprintf("RLIMIT_MEMLOCK (%s) is too low for the AF_XDP packet memory (UMEM), which is locked in RAM, and the process lacks CAP_IPC_LOCK: set LimitMEMLOCK=infinity in the systemd unit (or ulimit -l unlimited), or grant CAP_IPC_LOCK",
			limit))
	}
	return err
}

func fmtLimit(v uint64) string {
	switch {
	case v == unix.RLIM_INFINITY:
		return "unlimited"
	case v >= 1<<20 && v%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", v>>20)
	case v >= 1<<10 && v%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", v>>10)
	}
	return fmt.Sprintf("%d bytes", v)
}
