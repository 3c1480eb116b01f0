package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Redirect is a program at one device's ingress that sends every packet
// on, unchanged, out of another device: the tunnel transmit path's link
// from its transmit TAP to the uplink. A GSO super-frame stays one socket
// buffer on the way (the uplink's driver, or the kernel's GSO in front
// of it, cuts it).
type Redirect struct {
	prog *ebpf.Program
	lnk  link.Link
}

// redirectInstructions is the program: return bpf_redirect(to, 0), which
// sends the packet to the egress of device to.
func redirectInstructions(to int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, int32(to)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	}
}

// AttachRedirect attaches a Redirect to the ingress of device from (with
// TCX, Linux 6.6+), sending to the egress of device to.
func AttachRedirect(from, to int) (*Redirect, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mflow_redirect",
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: redirectInstructions(to),
	})
	if err != nil {
		return nil, fmt.Errorf("load redirect program: %w", err)
	}
	l, err := attachTCXIngress(prog, from)
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attach redirect program to ingress of interface %d (TCX, Linux 6.6+): %w", from, err)
	}
	return &Redirect{prog: prog, lnk: l}, nil
}

// Close detaches and unloads the program.
func (r *Redirect) Close() error {
	err := r.lnk.Close()
	r.prog.Close()
	return err
}
