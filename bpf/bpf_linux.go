package bpf

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// attachXDP attaches prog to the interface ifindex with a bpf_link in mode
// m (native or generic).
func attachXDP(prog *ebpf.Program, ifindex int, m Mode) (link.Link, error) {
	flags := link.XDPDriverMode
	if m == ModeGeneric {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
}

// attachTCXIngress attaches a SchedCLS program to the ingress of
// ifindex with TCX.
func attachTCXIngress(prog *ebpf.Program, ifindex int) (link.Link, error) {
	return link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
}
