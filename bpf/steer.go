package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Steering is a TAP queue-selection program (TUNSETSTEERINGEBPF): for a
// frame the kernel sends into a multi-queue TAP it returns a hash of the
// inner IPv4 addresses and, for TCP and UDP outside fragments, the ports
// (symmetric: both directions of a flow hash alike);
// the kernel takes it modulo the number of queues. A flow's packets
// therefore land on one queue, and flows spread over the queues. Other
// frames (ARP, IPv6) go to queue 0. As with a NIC's RSS, fragments and
// packets with IP options hash on the addresses alone, so a UDP flow that
// mixes fragmented and whole datagrams may have the two kinds on two
// queues (and reordered against each other).
type Steering struct {
	prog *ebpf.Program
}

// skfNetOff is SKF_NET_OFF: LD_ABS offsets from it are relative to the
// network header, wherever the frame starts in the context (the data of
// a frame a TAP sends starts at the Ethernet header; in a test run at
// the IP header).
const skfNetOff = -0x100000

// skbProtocol is the offset of __sk_buff.protocol (the EtherType, in
// network byte order).
const skbProtocol = 16

// steeringInstructions assembles the program. Loads go through LD_ABS,
// which ends the program (returning 0) on a frame too short for them.
func steeringInstructions() asm.Instructions {
	ip := func(off int32) int32 { return skfNetOff + off }
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, skbProtocol, asm.Word),
		asm.Mov.Reg(asm.R6, asm.R1),         // LD_ABS reads the skb in R6
		asm.JNE.Imm(asm.R2, 0x0008, "zero"), // htons(ETH_P_IP) on a little-endian host
		asm.LoadAbs(ip(12), asm.Word),       // source address
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadAbs(ip(16), asm.Word), // destination address
		asm.Xor.Reg(asm.R7, asm.R0),
		asm.LoadAbs(ip(0), asm.Byte), // version and IHL: ports only behind a 20-byte header
		asm.JNE.Imm(asm.R0, 0x45, "mix"),
		asm.LoadAbs(ip(6), asm.Half), // fragment offset and MF: no ports in fragments
		asm.And.Imm(asm.R0, 0x3fff),
		asm.JNE.Imm(asm.R0, 0, "mix"),
		asm.LoadAbs(ip(9), asm.Byte), // protocol
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.JEq.Imm(asm.R8, 6, "ports"),
		asm.JNE.Imm(asm.R8, 17, "mix"),
		asm.LoadAbs(ip(20), asm.Word).WithSymbol("ports"), // source and destination port
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.RSh.Imm(asm.R9, 16),
		asm.And.Imm(asm.R0, 0xffff),
		asm.Xor.Reg(asm.R0, asm.R9), // source ^ destination: the same both ways
		asm.Xor.Reg(asm.R7, asm.R0),
		// A 32-bit finaliser (xor-shift, multiply, twice), so that every
		// input bit moves the low bits the kernel keeps (it takes the
		// result's low 16 bits modulo the queue count): Linux gives
		// connecting sockets source ports of one parity, so a hash whose
		// low bits follow the port's would put every flow on one queue.
		asm.Mov.Reg32(asm.R0, asm.R7).WithSymbol("mix"),
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 16),
		asm.Xor.Reg32(asm.R0, asm.R1),
		asm.Mul.Imm32(asm.R0, 0x7feb352d),
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 15),
		asm.Xor.Reg32(asm.R0, asm.R1),
		asm.Mul.Imm32(asm.R0, -2073254261), // 0x846ca68b
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 16),
		asm.Xor.Reg32(asm.R0, asm.R1),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("zero"),
		asm.Return(),
	}
}

// NewSteering loads the program.
func NewSteering() (*Steering, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mflow_tapq",
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: steeringInstructions(),
	})
	if err != nil {
		return nil, fmt.Errorf("load TAP steering program: %w", err)
	}
	return &Steering{prog: prog}, nil
}

// FD is the program's file descriptor, for TUNSETSTEERINGEBPF.
func (s *Steering) FD() int { return s.prog.FD() }

// Run runs the program on frame (tests: the queue hash a frame gets).
func (s *Steering) Run(frame []byte) (uint32, error) {
	ret, _, err := s.prog.Test(frame)
	return ret, err
}

// Close unloads the program (a TAP that uses it keeps its reference).
func (s *Steering) Close() error { return s.prog.Close() }
