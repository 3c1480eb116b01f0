package veth

import (
	"fmt"

	"golang.org/x/sys/unix"

	"mflow/internal/ethtool"
)

// txChecksumOff turns TX checksum offload off on link name, in the calling
// thread's network namespace. A veth peer of mflow's veth needs it: a frame
// the containers send with a checksum left to "hardware"
// (CHECKSUM_PARTIAL) would reach mflow's XDP program with the checksum
// unfinished, and the remote VTEP would drop it; without the offload the
// kernel completes the checksum before the frame crosses the veth.
func txChecksumOff(name string) error {
	if err := ethtool.Set(name, unix.ETHTOOL_STXCSUM, false); err != nil {
		return fmt.Errorf("turn off tx checksumming on %s: %w", name, err)
	}
	return nil
}
