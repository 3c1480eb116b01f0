package vxlan

import "mflow/internal/csum"

// Checksum returns the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 { return csum.Checksum(b) }
