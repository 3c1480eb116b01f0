package testbedtest

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestNewNS: the namespace exists while its (sub)test runs and is gone
// when it ends; RequirePrivileges inside a test that holds the lock does
// not wait for its own process.
func TestNewNS(t *testing.T) {
	RequirePrivileges(t)
	var path string
	t.Run("sub", func(t *testing.T) {
		ns := NewNS(t, "tbtt")
		RequirePrivileges(t)
		if !strings.HasPrefix(ns.Name, "tbtt-") {
			t.Errorf("Name = %q, want tbtt-…", ns.Name)
		}
		path = ns.Path()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("namespace file: %v", err)
		}
	})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the subtest, %s: %v, want not exist", path, err)
	}
}
