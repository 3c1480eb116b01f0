package gen

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed/testbedtest"
)

// TestFetchAddEncoding checks the wire encoding of the sequence counter's
// atomic instruction: opcode BPF_STX|BPF_ATOMIC|BPF_DW, imm BPF_ADD|BPF_FETCH.
func TestFetchAddEncoding(t *testing.T) {
	var b bytes.Buffer
	if err := (asm.Instructions{fetchAdd(asm.R7, asm.R8, 0)}).Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	if len(raw) != 8 {
		t.Fatalf("encoded %d bytes, want 8", len(raw))
	}
	if op := raw[0]; op != 0xdb {
		t.Errorf("opcode %#x, want 0xdb", op)
	}
	if regs := raw[1]; regs != 0x87 {
		t.Errorf("registers %#x, want 0x87 (src r8, dst r7)", regs)
	}
	if imm := binary.LittleEndian.Uint32(raw[4:]); imm != 0x01 {
		t.Errorf("imm %#x, want 0x01 (BPF_ADD|BPF_FETCH)", imm)
	}
}

// TestProgramLimit runs the generator program without live frames: it
// returns XDP_TX and stamps consecutive sequence numbers and flows until the
// limit, then XDP_DROP without writing (what makes restarted runs harmless).
func TestProgramLimit(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	frame := make([]byte, 64)
	o := Options{SeqOffset: 40, TimeOffset: 48, FlowOffsets: []int{34, 36}, Flows: [][]uint16{{1, 2}, {3, 4}, {5, 6}}}
	if err := o.check(len(frame)); err != nil {
		t.Fatal(err)
	}
	g, err := newGenerator(&o)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.setState(state{Seq: 0, Limit: 4}); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(frame)+256)
	for i := range 6 {
		opts := ebpf.RunOptions{Data: frame, DataOut: out}
		before := monotonic(t)
		ret, err := g.prog.Run(&opts)
		after := monotonic(t)
		if err != nil {
			t.Fatal(err)
		}
		if i >= 4 {
			if ret != xdpDrop {
				t.Errorf("run %d past the limit returned %d, want XDP_DROP", i, ret)
			}
			continue
		}
		if ret != xdpTX {
			t.Fatalf("run %d returned %d, want XDP_TX", i, ret)
		}
		got := opts.DataOut
		if seq := binary.BigEndian.Uint64(got[40:]); seq != uint64(i) {
			t.Errorf("run %d: sequence number %d", i, seq)
		}
		if ts, _ := SentAt(got, 48); ts < before || ts > after {
			t.Errorf("run %d: timestamp %d outside [%d, %d]", i, ts, before, after)
		}
		f := o.Flows[i%3]
		if a, b := binary.BigEndian.Uint16(got[34:]), binary.BigEndian.Uint16(got[36:]); a != f[0] || b != f[1] {
			t.Errorf("run %d: flow fields %d,%d, want %v", i, a, b, f)
		}
	}
	st, err := g.getState()
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != 6 || st.Limit != 4 {
		t.Errorf("state %+v, want Seq 6 Limit 4", st)
	}
}

// TestProgramShortFrame: a frame shorter than the fields to write is
// dropped, never written past its end (the bounds check the verifier
// demands is also the program's logic).
func TestProgramShortFrame(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	o := Options{SeqOffset: 100}
	g, err := newGenerator(&o)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.setState(state{Limit: 10})
	ret, err := g.prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil {
		t.Fatal(err)
	}
	if ret != xdpDrop {
		t.Errorf("short frame: %d, want XDP_DROP", ret)
	}
}

func monotonic(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// TestProgramPacing: with pacing, a packet leaves no earlier than its due
// time (base + seq*interval), as its timestamp shows; a packet due beyond
// the spin bound goes out anyway after at most the bound.
func TestProgramPacing(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	o := Options{SeqOffset: 40, TimeOffset: 48, Rate: 1000}
	g, err := newGenerator(&o)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	frame := make([]byte, 64)
	out := make([]byte, len(frame)+256)
	base := uint64(monotonic(t)) + 100_000 // sequence 0 due in 100 µs
	if err := g.setState(state{Limit: 10, BaseNs: base, IntervalPs: 50_000_000}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // due at base, base+50µs, base+100µs
		opts := ebpf.RunOptions{Data: frame, DataOut: out}
		ret, err := g.prog.Run(&opts)
		if err != nil || ret != xdpTX {
			t.Fatalf("run %d: %d, %v", i, ret, err)
		}
		due := int64(base) + int64(i)*50_000
		if ts, _ := SentAt(opts.DataOut, 48); ts < due {
			t.Errorf("packet %d stamped %d ns before its due time", i, due-ts)
		}
	}
	// Far in the future: the bounded spin gives up and sends.
	if err := g.setState(state{Limit: 10, BaseNs: uint64(monotonic(t)) + uint64(time.Hour), IntervalPs: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ret, err := g.prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil || ret != xdpTX {
		t.Fatalf("far future: %d, %v", ret, err)
	}
	t.Logf("spin bound: %v", time.Since(start))
}
