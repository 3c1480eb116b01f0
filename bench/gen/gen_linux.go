package gen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Maximum frame length in live-frames mode: a page minus the runner's
// headroom (XDP_PACKET_HEADROOM and its page header) and tailroom
// (skb_shared_info); the kernel rejects longer input with EINVAL.
const maxLiveFrame = 3400 // measured on 6.18 (x86-64, 4 KiB pages): 3400 runs, 3450 is EINVAL

// Pacing: the program waits for a packet's due time in a bounded loop that
// reads bpf_ktime_get_ns spinUnroll times per iteration, at most spinLimit
// iterations (the verifier walks the loop once per iteration and keeps one
// pending branch per iteration, which its jump-sequence limit of 8192
// bounds), that is up to roughly a millisecond; a thread that is further
// ahead of schedule sleeps in user space first.
const (
	spinLimit  = 6000
	spinUnroll = 4
	sleepAhead = 2 * time.Millisecond
)

// xdpMD is struct xdp_md, the program's context.
type xdpMD struct {
	Data           uint32
	DataEnd        uint32
	DataMeta       uint32
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

// state is the value of the one-element state map (4 native-endian u64).
type state struct {
	Seq        uint64 // next sequence number; the program fetch-adds it
	Limit      uint64 // packets with Seq >= Limit are dropped
	BaseNs     uint64 // pacing: CLOCK_MONOTONIC time at which sequence 0 is due
	IntervalPs uint64 // pacing: picoseconds between packets; 0 = no pacing
}

const stateSize = 32

// Offsets of state's fields in the map value.
const (
	offSeq        = 0
	offLimit      = 8
	offBaseNs     = 16
	offIntervalPs = 24
)

func (o *Options) check(frameLen int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("checking options: %s: %w", fmt.Sprintf(format, a...), ErrBadOptions)
	}
	if frameLen < ethLen || frameLen > maxLiveFrame {
		return bad("frame length %d outside [%d, %d]", frameLen, ethLen, maxLiveFrame)
	}
	if o.BatchSize > MaxBatch {
		return bad("batch size %d above %d", o.BatchSize, MaxBatch)
	}
	if o.SeqOffset < 0 || (o.SeqOffset > 0 && o.SeqOffset+SeqLen > frameLen) {
		return bad("sequence number at %d does not fit a %d-byte frame", o.SeqOffset, frameLen)
	}
	if o.TimeOffset < 0 || (o.TimeOffset > 0 && o.TimeOffset+TimeLen > frameLen) {
		return bad("timestamp at %d does not fit a %d-byte frame", o.TimeOffset, frameLen)
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || (o.Rate > 0 && o.Rate < 1) {
		return bad("rate %g, want 0 or at least 1 packet/s", o.Rate)
	}
	if len(o.FlowOffsets) > MaxFlowFields {
		return bad("%d flow fields, at most %d", len(o.FlowOffsets), MaxFlowFields)
	}
	for _, off := range o.FlowOffsets {
		if off < 0 || off+2 > frameLen {
			return bad("flow field at %d does not fit a %d-byte frame", off, frameLen)
		}
	}
	if len(o.Flows) > MaxFlows {
		return bad("%d flows, at most %d", len(o.Flows), MaxFlows)
	}
	if len(o.Flows) > 0 && len(o.FlowOffsets) == 0 {
		return bad("flows without FlowOffsets")
	}
	for i, f := range o.Flows {
		if len(f) != len(o.FlowOffsets) {
			return bad("flow %d has %d values for %d fields", i, len(f), len(o.FlowOffsets))
		}
	}
	return nil
}

// fetchAdd returns `src = atomic_fetch_add((u64 *)(dst + off), src)`.
//
// cilium/ebpf v0.22.0's Instruction.Marshal reads the immediate before it
// derives it from the atomic operation, so asm.FetchAdd.Mem encodes
// imm = 0 (a plain add without fetch, leaving src unchanged). Setting the
// immediate (BPF_ADD | BPF_FETCH = 0x01) ourselves gives the right
// encoding with this and with a fixed version; TestFetchAddEncoding checks.
func fetchAdd(dst, src asm.Register, off int16) asm.Instruction {
	ins := asm.FetchAdd.Mem(dst, src, asm.DWord, off)
	ins.Constant = int64(asm.FetchAdd >> 8)
	return ins
}

// program returns the generator's instructions for o, reading the state map
// and, with flows, the flow table (one element of len(o.Flows)*8 bytes).
//
//	r6 = ctx; r7 = &state; r8 = fetch_add(&state.seq, 1)
//	if r8 >= state.limit: return XDP_DROP
//	[pacing: due = base + r8*interval/1000; spin on bpf_ktime_get_ns until due]
//	[r9 = bpf_ktime_get_ns()]
//	r2 = data; if data+end > data_end: return XDP_DROP
//	*(be64 *)(r2 + SeqOffset) = r8
//	*(be64 *)(r2 + TimeOffset) = r9
//	r9 = &flows[r8 % n]; *(u16 *)(r2 + FlowOffsets[j]) = r9[j]
//	return XDP_TX
func program(o *Options, stateMap, flowMap *ebpf.Map) (asm.Instructions, error) {
	end := 0
	if o.SeqOffset > 0 {
		end = o.SeqOffset + SeqLen
	}
	if o.TimeOffset > 0 {
		end = max(end, o.TimeOffset+TimeLen)
	}
	if len(o.Flows) > 0 {
		for _, off := range o.FlowOffsets {
			end = max(end, off+2)
		}
	}
	loadState := asm.LoadMapValue(asm.R7, 0, 0)
	if err := loadState.AssociateMap(stateMap); err != nil {
		return nil, err
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		loadState,
		asm.Mov.Imm(asm.R8, 1),
		fetchAdd(asm.R7, asm.R8, offSeq),
		asm.LoadMem(asm.R1, asm.R7, offLimit, asm.DWord),
		asm.JGE.Reg(asm.R8, asm.R1, "drop"),
	}
	if o.Rate > 0 {
		// The helper clobbers r0-r5; the due time lives on the stack and
		// the iteration count in r9 (callee-saved).
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R7, offIntervalPs, asm.DWord),
			asm.Mul.Reg(asm.R1, asm.R8),
			asm.Div.Imm(asm.R1, 1000),
			asm.LoadMem(asm.R2, asm.R7, offBaseNs, asm.DWord),
			asm.Add.Reg(asm.R1, asm.R2),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R9, 0),
			// A packet already due costs one clock read; otherwise each
			// iteration reads the clock spinUnroll times more.
			asm.FnKtimeGetNs.Call().WithSymbol("spin"),
			asm.LoadMem(asm.R1, asm.RFP, -8, asm.DWord),
			asm.JGE.Reg(asm.R0, asm.R1, "paced"),
		)
		for range spinUnroll {
			insns = append(insns, asm.FnKtimeGetNs.Call())
		}
		insns = append(insns,
			asm.Add.Imm(asm.R9, 1),
			asm.JLT.Imm(asm.R9, spinLimit, "spin"),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("paced"),
		)
	}
	if o.TimeOffset > 0 {
		insns = append(insns,
			asm.FnKtimeGetNs.Call(),
			asm.Mov.Reg(asm.R9, asm.R0),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(end)),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),
	)
	if o.SeqOffset > 0 {
		insns = append(insns,
			asm.Mov.Reg(asm.R5, asm.R8),
			asm.HostTo(asm.BE, asm.R5, asm.DWord),
			asm.StoreMem(asm.R2, int16(o.SeqOffset), asm.R5, asm.DWord),
		)
	}
	if o.TimeOffset > 0 {
		insns = append(insns,
			asm.HostTo(asm.BE, asm.R9, asm.DWord),
			asm.StoreMem(asm.R2, int16(o.TimeOffset), asm.R9, asm.DWord),
		)
	}
	if n := len(o.Flows); n > 0 {
		loadFlows := asm.LoadMapValue(asm.R9, 0, 0)
		if err := loadFlows.AssociateMap(flowMap); err != nil {
			return nil, err
		}
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R8),
			asm.Mod.Imm(asm.R1, int32(n)),
			// Redundant for the logic; gives the verifier the bound.
			asm.JGE.Imm(asm.R1, int32(n), "drop"),
			asm.LSh.Imm(asm.R1, 3),
			loadFlows,
			asm.Add.Reg(asm.R9, asm.R1),
		)
		for j, off := range o.FlowOffsets {
			insns = append(insns,
				asm.LoadMem(asm.R1, asm.R9, int16(2*j), asm.Half),
				asm.StoreMem(asm.R2, int16(off), asm.R1, asm.Half),
			)
		}
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	return insns, nil
}

// generator holds the kernel objects of one Run.
type generator struct {
	state *ebpf.Map
	flows *ebpf.Map
	prog  *ebpf.Program
}

func (g *generator) Close() {
	if g.prog != nil {
		g.prog.Close()
	}
	if g.flows != nil {
		g.flows.Close()
	}
	if g.state != nil {
		g.state.Close()
	}
}

func newGenerator(o *Options) (*generator, error) {
	g := &generator{}
	var err error
	g.state, err = ebpf.NewMap(&ebpf.MapSpec{
		Type: ebpf.Array, KeySize: 4, ValueSize: stateSize, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating state map: %w", err)
	}
	if n := len(o.Flows); n > 0 {
		g.flows, err = ebpf.NewMap(&ebpf.MapSpec{
			Type: ebpf.Array, KeySize: 4, ValueSize: uint32(8 * n), MaxEntries: 1,
		})
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("creating flow map: %w", err)
		}
		table := make([]byte, 8*n)
		for i, f := range o.Flows {
			for j, v := range f {
				binary.BigEndian.PutUint16(table[8*i+2*j:], v)
			}
		}
		if err := g.flows.Put(uint32(0), table); err != nil {
			g.Close()
			return nil, fmt.Errorf("filling flow map: %w", err)
		}
	}
	insns, err := program(o, g.state, g.flows)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("assembling program: %w", err)
	}
	g.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mflow_gen",
		Type:         ebpf.XDP,
		Instructions: insns,
		License:      "Dual MIT/GPL",
	})
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("loading generator program: %w", err)
	}
	return g, nil
}

func (g *generator) setState(s state) error {
	var b [stateSize]byte
	binary.NativeEndian.PutUint64(b[offSeq:], s.Seq)
	binary.NativeEndian.PutUint64(b[offLimit:], s.Limit)
	binary.NativeEndian.PutUint64(b[offBaseNs:], s.BaseNs)
	binary.NativeEndian.PutUint64(b[offIntervalPs:], s.IntervalPs)
	return g.state.Put(uint32(0), b[:])
}

func (g *generator) getState() (state, error) {
	var b [stateSize]byte
	if err := g.state.Lookup(uint32(0), b[:]); err != nil {
		return state{}, err
	}
	return state{
		Seq:        binary.NativeEndian.Uint64(b[offSeq:]),
		Limit:      binary.NativeEndian.Uint64(b[offLimit:]),
		BaseNs:     binary.NativeEndian.Uint64(b[offBaseNs:]),
		IntervalPs: binary.NativeEndian.Uint64(b[offIntervalPs:]),
	}, nil
}

// inNS runs fn in ns, or, if ns is nil, on the caller's goroutine locked to
// its thread (fn may pin the thread to a CPU and restores it).
func inNS(ns Namespace, fn func() error) error {
	if ns == nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		return fn()
	}
	return ns.Do(fn)
}

type linkCounters struct{ tx, txDropped uint64 }

// readCounters reads ifname's counters; it must run in the interface's
// namespace (the package-level netlink handle opens its socket there).
func readCounters(ifname string) (linkCounters, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return linkCounters{}, fmt.Errorf("finding link %s: %w", ifname, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return linkCounters{}, fmt.Errorf("reading statistics of %s: none reported", ifname)
	}
	return linkCounters{tx: s.TxPackets, txDropped: s.TxDropped}, nil
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// run is Run on Linux. Each thread loops on its own: read the shared
// counter, sleep if paced and ahead of schedule, run the program for up to
// Chunk packets. The threads never wait for each other, and the limit in
// the map makes the total exact whatever the interleaving.
func run(ctx context.Context, ns Namespace, ifname string, frame []byte, o Options) (Stats, error) {
	if err := o.check(len(frame)); err != nil {
		return Stats{}, err
	}
	threads := max(len(o.CPUs), 1)
	chunk := uint64(o.Chunk)
	if chunk == 0 {
		chunk = 1 << 16
		if o.Rate > 0 {
			// About 50 ms of packets per system call and thread.
			chunk = uint64(max(o.Rate/20/float64(threads), 1))
		}
	}
	batch := o.BatchSize
	if batch == 0 && o.Rate > 0 {
		// Frames are flushed to the driver per batch: keep a batch within
		// about 10 µs so pacing and timestamps stay meaningful.
		batch = uint32(min(max(o.Rate/100000, 1), 64))
	}

	g, err := newGenerator(&o)
	if err != nil {
		return Stats{}, err
	}
	defer g.Close()

	var ifindex int
	var before linkCounters
	if err := inNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("finding interface %s: %w", ifname, err)
		}
		ifindex = ifi.Index
		before, err = readCounters(ifname)
		return err
	}); err != nil {
		return Stats{}, fmt.Errorf("preparing generator: %w", err)
	}

	st := state{Limit: o.Count}
	if o.Count == 0 {
		st.Limit = math.MaxUint64
	}
	if o.Rate > 0 {
		st.IntervalPs = uint64(1e12 / o.Rate)
		st.BaseNs = monotonicNow() + uint64(time.Millisecond)
	}
	if err := g.setState(st); err != nil {
		return Stats{}, fmt.Errorf("setting generator state: %w", err)
	}
	run := &ebpf.RunOptions{
		Data:      frame,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: batch,
		Context: xdpMD{
			DataEnd:        uint32(len(frame)),
			IngressIfindex: uint32(ifindex),
			RxQueueIndex:   o.RxQueue,
		},
	}

	start := time.Now()
	errs := make(chan error, threads)
	for i := range threads {
		cpu := -1
		if len(o.CPUs) > 0 {
			cpu = o.CPUs[i]
		}
		go func() {
			errs <- inNS(ns, func() error { return generate(ctx, g, run, cpu, chunk) })
		}()
	}
	var runErr error
	for range threads {
		runErr = errors.Join(runErr, <-errs)
	}
	elapsed := time.Since(start)

	var stats Stats
	if final, err := g.getState(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("reading generator state: %w", err))
	} else {
		stats.Sent = min(final.Seq, final.Limit)
	}
	stats.Duration = elapsed
	if err := inNS(ns, func() error {
		after, err := readCounters(ifname)
		stats.LinkTxPackets = after.tx - before.tx
		stats.LinkTxDropped = after.txDropped - before.txDropped
		return err
	}); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("reading link counters: %w", err))
	}
	if runErr == nil && stats.Sent > 0 && stats.LinkTxPackets == 0 && stats.LinkTxDropped == 0 {
		runErr = fmt.Errorf("sending on %s: %w", ifname, ErrNothingTransmitted)
	}
	return stats, runErr
}

// generate is one generator thread: on this (locked) thread, optionally
// pinned to cpu, it runs the program chunk by chunk until the limit is
// reached or ctx is done.
func generate(ctx context.Context, g *generator, run *ebpf.RunOptions, cpu int, chunk uint64) error {
	if cpu >= 0 {
		var old, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return fmt.Errorf("reading CPU affinity: %w", err)
		}
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pinning generator to CPU %d: %w", cpu, err)
		}
		defer unix.SchedSetaffinity(0, &old)
	}
	opts := *run
	for ctx.Err() == nil {
		st, err := g.getState()
		if err != nil {
			return fmt.Errorf("reading generator state: %w", err)
		}
		if st.Seq >= st.Limit {
			return nil
		}
		if st.IntervalPs > 0 {
			due := st.BaseNs + st.Seq*st.IntervalPs/1000
			if now := monotonicNow(); due > now+uint64(sleepAhead) {
				t := time.NewTimer(time.Duration(due-now) - sleepAhead/2)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		}
		opts.Repeat = uint32(min(chunk, st.Limit-st.Seq))
		if _, err := g.prog.Run(&opts); err != nil {
			return fmt.Errorf("running generator program: %w", err)
		}
	}
	return nil
}

// attachVerdict attaches to ifname in ns an XDP program that returns
// verdict for every packet (see AttachPass).
func attachVerdict(ns Namespace, ifname string, verdict int32) (io.Closer, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "mflow_verdict",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, verdict),
			asm.Return(),
		},
		License: "Dual MIT/GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("loading XDP program: %w", err)
	}
	defer prog.Close()
	var l link.Link
	err = inNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("finding interface %s: %w", ifname, err)
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attaching XDP program to %s: %w", ifname, err)
	}
	return l, nil
}
