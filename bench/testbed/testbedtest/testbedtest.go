// Package testbedtest holds what the tests of every package that use the
// testbed share: [RequirePrivileges], which skips a test that cannot build
// namespaces and makes privileged tests of different packages run one at a
// time, and [NewNS], a namespace deleted when its test ends.
//
// Only tests import it: it links the testing package, which the mflow
// binary (that imports bench/testbed for `mflow demo` and `mflow bench`)
// must not.
package testbedtest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"mflow/bench/testbed"
)

// Capability numbers from linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// RequirePrivileges skips tb unless the process can create network
// namespaces, configure links and load BPF programs: effective uid 0 or the
// capabilities CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF (CAP_SYS_ADMIN
// implies CAP_BPF on kernels before 5.8).
//
// A test that may run also holds, until it ends, a lock shared by every
// test process on the machine: privileged tests of different packages run
// one at a time (see holdTestLock for why).
func RequirePrivileges(tb testing.TB) {
	tb.Helper()
	if ok, why := privileged(); !ok {
		tb.Skipf("needs root (CAP_NET_ADMIN, CAP_BPF): run as root (%s)", why)
	}
	holdTestLock(tb)
}

// NewNS creates a namespace named after prefix (see [testbed.NewNS]) for
// tb and deletes it, with every link in it, when tb ends. It calls
// RequirePrivileges first, so tb is skipped where namespaces cannot be
// made; failing to create or to delete the namespace fails tb.
func NewNS(tb testing.TB, prefix string) *testbed.NS {
	tb.Helper()
	RequirePrivileges(tb)
	ns, err := testbed.NewNS(prefix)
	if err != nil {
		tb.Fatalf("creating namespace: %v", err)
	}
	tb.Cleanup(func() {
		if err := ns.Close(); err != nil {
			tb.Errorf("deleting namespace: %v", err)
		}
	})
	return ns
}

// privileged reports whether the effective capability set holds what the
// testbed needs, and if not, why.
func privileged() (bool, string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		if os.Geteuid() == 0 {
			return true, ""
		}
		return false, "not root and cannot read /proc/self/status"
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, "cannot parse CapEff"
		}
		has := func(c uint) bool { return caps&(1<<c) != 0 }
		switch {
		case !has(capNetAdmin):
			return false, "missing CAP_NET_ADMIN"
		case !has(capSysAdmin):
			return false, "missing CAP_SYS_ADMIN"
		}
		return true, ""
	}
	if os.Geteuid() == 0 {
		return true, ""
	}
	return false, "not root"
}
