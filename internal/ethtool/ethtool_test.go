//go:build linux

package ethtool

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestLoopback reads TX checksumming of lo (every namespace has it, no
// root needed to read) and rejects an over-long name.
func TestLoopback(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no AF_INET socket: %v", err)
	}
	defer unix.Close(fd)
	if _, err := Do(fd, "lo", unix.ETHTOOL_GTXCSUM, 0); err != nil {
		t.Fatalf("ETHTOOL_GTXCSUM on lo: %v", err)
	}
	if _, err := Do(fd, "a-name-longer-than-ifnamsiz", unix.ETHTOOL_GTXCSUM, 0); err == nil {
		t.Error("over-long name accepted")
	}
	if _, err := Do(fd, "no-such-link0", unix.ETHTOOL_GTXCSUM, 0); err == nil {
		t.Error("missing link accepted")
	}
}

// TestSocketGet reads TX checksumming of lo through a Socket: the same
// value as Do's, and an error for a missing link.
func TestSocketGet(t *testing.T) {
	s, err := Open()
	if err != nil {
		t.Skipf("no AF_INET socket: %v", err)
	}
	on, err := s.Get("lo", unix.ETHTOOL_GTXCSUM)
	if err != nil {
		t.Fatalf("Get ETHTOOL_GTXCSUM on lo: %v", err)
	}
	if v, err := Do(s.fd, "lo", unix.ETHTOOL_GTXCSUM, 0); err != nil || (v != 0) != on {
		t.Errorf("Do = %d, %v; Get = %v", v, err, on)
	}
	if _, err := s.Get("no-such-link0", unix.ETHTOOL_GTXCSUM); err == nil {
		t.Error("missing link accepted")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
