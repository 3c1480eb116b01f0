//go:build !linux

package bpf

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// attachXDP returns ErrUnsupported: XDP is Linux's (loading the program
// already fails here, cilium/ebpf reports BPF as unsupported).
func attachXDP(*ebpf.Program, int, Mode) (link.Link, error) { return nil, ErrUnsupported }

// attachTCXIngress returns ErrUnsupported.
func attachTCXIngress(*ebpf.Program, int) (link.Link, error) { return nil, ErrUnsupported }
