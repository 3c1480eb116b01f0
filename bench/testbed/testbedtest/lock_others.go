//go:build !linux

package testbedtest

import "testing"

// holdTestLock does nothing where privileged tests cannot run.
func holdTestLock(tb testing.TB) {}
