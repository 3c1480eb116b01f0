package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockPath is the file whose flock serialises privileged tests across
// test processes.
var TestLockPath = filepath.Join(os.TempDir(), "mflow-privileged-tests.lock")

// The lock is held once per process and counted, so that a subtest or a
// helper calling RequirePrivileges again inside a test does not wait for
// its own process.
var testLock struct {
	sync.Mutex
	refs int
	f    *os.File
}

// holdTestLock takes the machine-wide lock for privileged tests and
// releases it when tb ends. `go test ./...` runs the packages as parallel
// processes; their namespaces are separate but the CPUs' receive backlogs
// (netif_rx, net.core.netdev_max_backlog) are shared by all of them, so a
// test that floods one veth makes another test's veth drop frames. Tests
// that assert "no loss" must not run next to one that floods.
func holdTestLock(tb testing.TB) {
	tb.Helper()
	testLock.Lock()
	defer testLock.Unlock()
	if testLock.refs == 0 {
		// os.OpenFile opens with O_CLOEXEC: child processes do not inherit the lock.
		f, err := os.OpenFile(TestLockPath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			tb.Fatalf("open test lock: %v", err)
		}
		start := time.Now()
		if err := flock(f); err != nil {
			f.Close()
			tb.Fatalf("lock %s: %v", TestLockPath, err)
		}
		if w := time.Since(start); w > time.Second {
			tb.Logf("waited %v for the privileged-test lock (another package's test held it)", w.Round(time.Millisecond))
		}
		testLock.f = f
	}
	testLock.refs++
	tb.Cleanup(func() {
		testLock.Lock()
		defer testLock.Unlock()
		testLock.refs--
		if testLock.refs == 0 {
			testLock.f.Close() // closing the last descriptor releases the flock
			testLock.f = nil
		}
	})
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("flock: %w", err)
			}
			return nil
		}
	}
}
