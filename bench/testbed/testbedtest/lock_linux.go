package testbedtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testLockPaths are where the lock file is looked for: /run (root's, and
// the same whatever TMPDIR says), else the temporary directory.
var testLockPaths = []string{"/run/mflow-privileged-tests.lock", filepath.Join(os.TempDir(), "mflow-privileged-tests.lock")}

// testLockEnv names, in the environment of child processes, the process
// that held the lock when it started them: a test that re-executes its
// binary must not have the child wait for the lock its parent holds.
const testLockEnv = "MFLOW_TEST_LOCK_HOLDER"

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
	if testLock.refs == 0 && os.Getenv(testLockEnv) == strconv.Itoa(os.Getppid()) {
		// Our parent holds the lock for the test that started us.
		return
	}
	if testLock.refs == 0 {
		// os.OpenFile opens with O_CLOEXEC: child processes do not
		// inherit the lock itself.
		var f *os.File
		var err error
		for _, path := range testLockPaths {
			if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
				break
			}
		}
		if err != nil {
			tb.Fatalf("open test lock: %v", err)
		}
		start := time.Now()
		if err := flock(f); err != nil {
			f.Close()
			tb.Fatalf("lock %s: %v", f.Name(), err)
		}
		os.Setenv(testLockEnv, strconv.Itoa(os.Getpid()))
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
			os.Unsetenv(testLockEnv)
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
