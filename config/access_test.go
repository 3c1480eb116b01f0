//go:build unix

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mflow.yaml")
	if err := os.WriteFile(path, []byte("uplink: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" accepts
	}{
		{0o600, ""},
		{0o644, ""},
		{0o640, ""},
		{0o666, "writable by every user"},
		{0o602, "writable by every user"},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckAccess(path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mode %04o: %v", tc.mode, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "chmod")):
			t.Errorf("mode %04o: %v; want an ErrInvalid saying %q and how to fix it", tc.mode, err, tc.want)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner and group needs root")
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 12345); err != nil {
		t.Fatal(err)
	}
	if err := CheckAccess(path); err == nil || !strings.Contains(err.Error(), "writable by group 12345") {
		t.Errorf("group-writable by another group: %v", err)
	}
	if err := os.Chown(path, 12345, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckAccess(path); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") || !strings.Contains(err.Error(), "chown root") {
		t.Errorf("owned by another user: %v", err)
	}
}
