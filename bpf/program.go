package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Map and program names inside the collection.
const (
	progName     = "mflow_xdp"
	mapConfig    = "mflow_config"
	mapVTEPs     = "mflow_vteps"
	mapPeers     = "mflow_peers"
	mapXSKs      = "mflow_xsks"
	mapCounters  = "mflow_counters"
	flagFilter   = 1
	xdpDrop      = 1
	xdpPass      = 2
	xdpRedirect  = 4
	minFrameSize = 14 + 20 + 8 // Ethernet + IPv4 without options + UDP
)

// counterValue is the per-CPU value of the counters map.
type counterValue struct {
	Packets uint64
	Bytes   uint64
}

// instructions returns the XDP program. Registers: r6 context, r7 packet
// start, r8 config value, r9 redirect verdict. Stack: -4 counter/config key,
// -8 address key.
func instructions() asm.Instructions {
	const (
		lPass     = "pass"
		lDropPeer = "drop_peer"
		lRedirect = "redirect"
		lFrag     = "fragment"
		lOptions  = "ip_options"
		lCountFr  = "count_fragment"
		lCountOpt = "count_ip_options"
	)
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Add.Imm(asm.R4, minFrameSize),
		asm.JGT.Reg(asm.R4, asm.R3, lPass),
		// EtherType IPv4 (bytes 08 00 read little-endian).
		asm.LoadMem(asm.R5, asm.R7, 12, asm.Half),
		asm.JNE.Imm(asm.R5, 0x0008, lPass),
		// Protocol UDP, IP version 4.
		asm.LoadMem(asm.R5, asm.R7, 23, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, lPass),
		asm.LoadMem(asm.R5, asm.R7, 14, asm.Byte),
		asm.RSh.Imm(asm.R5, 4),
		asm.JNE.Imm(asm.R5, 4, lPass),
		// config = lookup(config, 0)
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapConfig),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, lPass),
		asm.Mov.Reg(asm.R8, asm.R0),
		// MF flag or fragment offset: the kernel reassembles (counted
		// when the datagram is for one of our VTEPs).
		asm.LoadMem(asm.R5, asm.R7, 20, asm.Half),
		asm.And.Imm(asm.R5, 0xff3f),
		asm.JNE.Imm(asm.R5, 0, lFrag),
		// IHL 5: options go to the kernel (counted when the datagram is
		// VxLAN for us).
		asm.LoadMem(asm.R5, asm.R7, 14, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, lOptions),
		// UDP destination port, both in network byte order.
		asm.LoadMem(asm.R5, asm.R7, 36, asm.Half),
		asm.LoadMem(asm.R4, asm.R8, 0, asm.Half),
		asm.JNE.Reg(asm.R5, asm.R4, lPass),
	}
	// IPv4 destination is one of our VTEPs.
	insns = append(insns, addrInSet(30, mapVTEPs, lPass)...)
	// Optional peer filter on the IPv4 source.
	insns = append(insns,
		asm.LoadMem(asm.R4, asm.R8, 2, asm.Half),
		asm.And.Imm(asm.R4, flagFilter),
		asm.JEq.Imm(asm.R4, 0, lRedirect),
	)
	insns = append(insns, addrInSet(26, mapPeers, lDropPeer)...)
	insns = append(insns, redirect(lRedirect)...)
	insns = append(insns, count(VerdictNoSocket, "")...)
	insns = append(insns, count(VerdictRedirect, lRedirOK)...)
	insns = append(insns, count(VerdictDropPeer, lDropPeer)...)
	insns = append(insns, count(VerdictPass, lPass)...)
	// A fragment to one of our VTEPs (any port: only the first fragment
	// carries the UDP header).
	frag := addrInSet(30, mapVTEPs, lPass)
	frag[0] = frag[0].WithSymbol(lFrag)
	insns = append(insns, frag...)
	insns = append(insns, asm.Ja.Label(lCountFr))
	// IP options: IHL 6..15 (below 5 is not a valid header), then the
	// UDP port behind the options and the destination VTEP.
	// One branch per IHL, each reading the port at a constant offset: a
	// packet pointer plus a variable offset is refused by the verifier
	// for a loader without CAP_PERFMON (CAP_BPF alone, as the daemon
	// runs), a constant one is not.
	const lOptPort = "ip_options_port"
	insns = append(insns, asm.And.Imm(asm.R5, 0x0f).WithSymbol(lOptions))
	for ihl := 6; ihl <= 15; ihl++ {
		insns = append(insns, asm.JEq.Imm(asm.R5, int32(ihl), fmt.Sprintf("ihl_%d", ihl)))
	}
	insns = append(insns, asm.Ja.Label(lPass)) // IHL below 5: not a valid header
	for ihl := 6; ihl <= 15; ihl++ {
		udp := int16(14 + 4*ihl)
		insns = append(insns,
			asm.Mov.Reg(asm.R4, asm.R7).WithSymbol(fmt.Sprintf("ihl_%d", ihl)),
			asm.Add.Imm(asm.R4, int32(udp)+4),
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end (r3 was clobbered by the call)
			asm.JGT.Reg(asm.R4, asm.R3, lPass),
			asm.LoadMem(asm.R5, asm.R7, udp+2, asm.Half),
			asm.Ja.Label(lOptPort),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R4, asm.R8, 0, asm.Half).WithSymbol(lOptPort),
		asm.JNE.Reg(asm.R5, asm.R4, lPass),
	)
	insns = append(insns, addrInSet(30, mapVTEPs, lPass)...)
	insns = append(insns, count(VerdictIPOptions, lCountOpt)...)
	insns = append(insns, count(VerdictFragment, lCountFr)...)
	return insns
}

// instructionsAll returns the program of Config.All: redirect every frame
// to the socket of its queue.
func instructionsAll() asm.Instructions {
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	insns = append(insns, redirect("")...)
	insns = append(insns, count(VerdictNoSocket, "")...)
	return append(insns, count(VerdictRedirect, lRedirOK)...)
}

// addrInSet emits: look the IPv4 address at packet offset off (r7 is the
// packet start) up in the hash map set, and jump to miss when it is not
// there. It uses the stack slot -8 as the key.
func addrInSet(off int16, set, miss string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R5, asm.R7, off, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R5, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(set),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	}
}

// lRedirOK labels the counting of a successful redirect.
const lRedirOK = "redirected"

// redirect emits redirect_map(xsks, rx_queue_index, XDP_PASS) (XDP_PASS
// when the queue has no socket) with the action in r9, then a jump to
// lRedirOK when it redirected; it falls through otherwise. r6 holds the
// context. The first instruction carries label when it is not empty.
func redirect(label string) asm.Instructions {
	first := asm.LoadMem(asm.R2, asm.R6, 16, asm.Word) // rx_queue_index
	if label != "" {
		first = first.WithSymbol(label)
	}
	return asm.Instructions{
		first,
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapXSKs),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.JEq.Imm(asm.R0, xdpRedirect, lRedirOK),
	}
}

// count emits: counters[v] += {1, frame length}; return r9 (for the
// redirect paths) or the verdict's fixed action. The first instruction
// carries label when it is not empty.
func count(v Verdict, label string) asm.Instructions {
	done := fmt.Sprintf("count_done_%d", v)
	var ret asm.Instruction
	switch v {
	case VerdictPass, VerdictFragment, VerdictIPOptions:
		ret = asm.Mov.Imm(asm.R0, xdpPass)
	case VerdictDropPeer:
		ret = asm.Mov.Imm(asm.R0, xdpDrop)
	default:
		ret = asm.Mov.Reg(asm.R0, asm.R9)
	}
	first := asm.Mov.Reg(asm.R1, asm.R6)
	if label != "" {
		first = first.WithSymbol(label)
	}
	return asm.Instructions{
		first,
		asm.FnXdpGetBuffLen.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.StoreImm(asm.RFP, -4, int64(v), asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounters),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.LoadMem(asm.R2, asm.RFP, -16, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		ret.WithSymbol(done),
		asm.Return(),
	}
}

func collectionSpec(queues int, all bool) *ebpf.CollectionSpec {
	insns := instructions()
	if all {
		insns = instructionsAll()
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			mapConfig:   {Name: mapConfig, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
			mapVTEPs:    {Name: mapVTEPs, Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: MaxVTEPs},
			mapPeers:    {Name: mapPeers, Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: MaxPeers},
			mapXSKs:     {Name: mapXSKs, Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)},
			mapCounters: {Name: mapCounters, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: uint32(NumVerdicts)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			progName: {
				Name:         progName,
				Type:         ebpf.XDP,
				License:      "Dual MIT/GPL",
				Instructions: insns,
			},
		},
	}
}

// Program is the loaded XDP program with its maps. It can be attached to
// several interfaces. Methods are safe for concurrent use; the zero value
// is not usable (use Load).
type Program struct {
	mu       sync.Mutex
	coll     *ebpf.Collection
	prog     *ebpf.Program
	config   *ebpf.Map
	vteps    *ebpf.Map
	peers    *ebpf.Map
	xsks     *ebpf.Map
	counters *ebpf.Map
	queues   int
}

// Load loads the program and its maps into the kernel and applies cfg.
// Needs CAP_BPF (or root).
func Load(cfg Config) (*Program, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	queues := cfg.Queues
	if queues == 0 {
		queues = DefaultQueues
	}
	coll, err := ebpf.NewCollection(collectionSpec(queues, cfg.All))
	if err != nil {
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	p := &Program{
		coll:     coll,
		prog:     coll.Programs[progName],
		config:   coll.Maps[mapConfig],
		vteps:    coll.Maps[mapVTEPs],
		peers:    coll.Maps[mapPeers],
		xsks:     coll.Maps[mapXSKs],
		counters: coll.Maps[mapCounters],
		queues:   queues,
	}
	if err := p.Configure(cfg); err != nil {
		coll.Close()
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	return p, nil
}

// Configure replaces the VTEP addresses, port and peer filter. Frames in
// flight may see a mix of old and new settings while it runs. cfg.Queues is
// ignored (the XSKMAP size is fixed at Load).
func (p *Program) Configure(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("configure xdp program: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := replaceSet(p.vteps, cfg.VTEPs); err != nil {
		return fmt.Errorf("configure vteps: %w", err)
	}
	if err := replaceSet(p.peers, cfg.Peers); err != nil {
		return fmt.Errorf("configure peers: %w", err)
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	var flags byte
	if cfg.FilterPeers {
		flags |= flagFilter
	}
	val := [4]byte{byte(port >> 8), byte(port), flags, 0}
	if err := p.config.Put(uint32(0), val); err != nil {
		return fmt.Errorf("configure port: %w", err)
	}
	return nil
}

// replaceSet makes the hash map m hold exactly addrs (as raw IPv4 keys).
func replaceSet(m *ebpf.Map, addrs []netip.Addr) error {
	want := make(map[[4]byte]bool, len(addrs))
	for _, a := range addrs {
		want[a.Unmap().As4()] = true
	}
	var k [4]byte
	var v uint32
	var stale [][4]byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	for k := range want {
		if err := m.Put(k, uint32(1)); err != nil {
			return err
		}
	}
	return nil
}

// Register makes frames for us on queue go to the AF_XDP socket fd, which
// must be bound to that queue of an interface the program is attached to.
func (p *Program) Register(queue, fd int) error {
	if queue < 0 || queue >= p.queues {
		return fmt.Errorf("register queue %d: out of range 0..%d", queue, p.queues-1)
	}
	if err := p.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("register queue %d: %w", queue, err)
	}
	return nil
}

// Unregister removes the socket of queue; its frames go to the kernel
// again. Removing an empty slot is not an error.
func (p *Program) Unregister(queue int) error {
	if queue < 0 || queue >= p.queues {
		return fmt.Errorf("unregister queue %d: out of range 0..%d", queue, p.queues-1)
	}
	if err := p.xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister queue %d: %w", queue, err)
	}
	return nil
}

// Counters returns the per-verdict counters summed over all CPUs.
func (p *Program) Counters() (Counters, error) {
	var c Counters
	var per []counterValue
	for v := Verdict(0); v < NumVerdicts; v++ {
		if err := p.counters.Lookup(uint32(v), &per); err != nil {
			return c, fmt.Errorf("read counter %v: %w", v, err)
		}
		for _, x := range per {
			c.Packets[v] += x.Packets
			c.Bytes[v] += x.Bytes
		}
	}
	return c, nil
}

// XDP returns the underlying program, e.g. for Program.Run in tests. It is
// owned by p.
func (p *Program) XDP() *ebpf.Program { return p.prog }

// Close unloads the program and its maps. Attachments hold their own
// reference and keep the program running until they are closed.
func (p *Program) Close() error {
	p.coll.Close()
	return nil
}

// Attachment is the program attached to one interface through a bpf_link.
// It is safe for concurrent use.
type Attachment struct {
	link    link.Link
	mode    Mode
	ifindex int
}

// Attach attaches the program to the interface ifindex (in the calling
// thread's network namespace) in the given mode. ModeAuto tries native mode
// first and then generic mode; ModeNative and ModeGeneric never fall back.
// The kernel detaches the program when the Attachment is closed or the
// process exits.
func (p *Program) Attach(ifindex int, mode Mode) (*Attachment, error) {
	try := func(m Mode) (*Attachment, error) {
		l, err := attachXDP(p.prog, ifindex, m)
		if err != nil {
			return nil, fmt.Errorf("attach xdp (%v) to ifindex %d: %w", m, ifindex, err)
		}
		return &Attachment{link: l, mode: m, ifindex: ifindex}, nil
	}
	switch mode {
	case ModeNative, ModeGeneric:
		return try(mode)
	case ModeAuto:
		a, errNative := try(ModeNative)
		if errNative == nil {
			return a, nil
		}
		a, errGeneric := try(ModeGeneric)
		if errGeneric == nil {
			return a, nil
		}
		return nil, errors.Join(errNative, errGeneric)
	}
	return nil, fmt.Errorf("attach xdp: unknown mode %v", mode)
}

// Mode reports the mode in use (native or generic, never auto).
func (a *Attachment) Mode() Mode { return a.mode }

// Ifindex is the interface the program is attached to.
func (a *Attachment) Ifindex() int { return a.ifindex }

// Close detaches the program.
func (a *Attachment) Close() error {
	if err := a.link.Close(); err != nil {
		return fmt.Errorf("detach xdp from ifindex %d: %w", a.ifindex, err)
	}
	return nil
}
