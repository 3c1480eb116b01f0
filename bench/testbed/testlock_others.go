//go:build !linux

package testbed

import "testing"

// holdTestLock does nothing where privileged tests cannot run.
func holdTestLock(tb testing.TB) {}
