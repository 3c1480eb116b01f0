package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"mflow/bench/gen"
	"mflow/bench/traffic"
	"mflow/dataplane"
	"mflow/dataplane/memio"
	"mflow/steer"
)

// Reorder is the paper's Fig. 7 in user space: the dataplane engine with
// the microflow policy, ReorderWorkers workers and each batch size of
// ReorderBatches decapsulates ReorderPackets generated VxLAN frames of one
// flow from memory (dataplane/memio) with its merger bypassed
// (dataplane.Config.Unordered, mode "microflow-unordered") and, for
// comparison, with the merger (mode "microflow-merger", which must show
// zero). The sink checks the sequence numbers: out_of_order counts frames
// that arrived after a frame with a higher number, reorder_events the
// backward jumps of the sequence (about one per late micro-flow). The stages are
// dataplane's DecapStage and one round of ChecksumStage (per-packet work
// of a few hundred nanoseconds, so that workers interleave as they do on
// real traffic).
//
// In memory the engine alone is measured, without the kernel's share of
// the time, at rates the testbed cannot offer on a small machine; the same
// sweep through the daemon, counted at the container's socket, is
// Options.ReorderWire (step kind KindWireReorder).
//
// Progress lines go to progressW (nil: none). Run calls it when
// Options.ReorderBatches is set; zero Options fields take their defaults.
func Reorder(ctx context.Context, o Options, progressW io.Writer) []Result {
	if err := o.fill(); err != nil {
		return []Result{{Mode: ModeUnordered, Step: Step{Kind: KindReorder}, Error: err.Error()}}
	}
	p := &progress{w: progressW, start: time.Now(), total: len(o.ReorderBatches) * 2 * o.Reps}
	return reorder(ctx, o, p)
}

func reorder(ctx context.Context, o Options, p *progress) []Result {
	var out []Result
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: netip.MustParseAddr("192.0.2.2"), DstIP: netip.MustParseAddr("192.0.2.1"), SrcPort: 49152, VNI: 42,
		Inner: &gen.FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2},
			SrcIP: netip.MustParseAddr("10.42.0.1"), DstIP: netip.MustParseAddr("10.42.0.2"), SrcPort: 5000, DstPort: 7000,
		},
		Size: 14 + 20 + 8 + 8 + 14 + 20 + 8 + 64,
	})
	if err != nil {
		return []Result{{Mode: ModeUnordered, Step: Step{Kind: KindReorder}, Error: err.Error()}}
	}
	for _, ordered := range []bool{false, true} {
		mode := ModeUnordered
		if ordered {
			mode = ModeMerger
		}
		for _, batch := range o.ReorderBatches {
			res := Result{Mode: mode, Step: Step{Kind: KindReorder, Batch: batch, Workers: o.ReorderWorkers}}
			for rep := range o.Reps {
				if ctx.Err() != nil {
					break
				}
				p.line("%s: %s rep %d/%d", mode, res.Step, rep+1, o.Reps)
				s, err := reorderOnce(ctx, f, batch, o.ReorderWorkers, o.ReorderPackets, !ordered)
				p.done++
				if err != nil {
					res.Error = err.Error()
					break
				}
				res.Samples = append(res.Samples, s)
			}
			res.summarise()
			out = append(out, res)
		}
	}
	return out
}

// reorderOnce runs one in-memory stream and counts out-of-order deliveries.
func reorderOnce(ctx context.Context, f gen.Frame, batch, workers int, count uint64, unordered bool) (Sample, error) {
	tmpl := f.Data
	off := f.SeqOffset
	src, err := memio.NewSource(memio.SourceConfig{
		Buffers: 8192, FrameSize: 256, Count: count,
		Gen: func(seq uint64, buf []byte) int {
			n := copy(buf, tmpl)
			buf[off] = byte(seq >> 56)
			buf[off+1] = byte(seq >> 48)
			buf[off+2] = byte(seq >> 40)
			buf[off+3] = byte(seq >> 32)
			buf[off+4] = byte(seq >> 24)
			buf[off+5] = byte(seq >> 16)
			buf[off+6] = byte(seq >> 8)
			buf[off+7] = byte(seq)
			return n
		},
	})
	if err != nil {
		return Sample{}, fmt.Errorf("creating memory source: %w", err)
	}
	// Offset of the sequence number in the inner (decapsulated) frame.
	innerOff := off - (14 + 20 + 8 + 8)
	var seq traffic.Seq
	sink := &memio.Sink{Frame: func(out []byte, _ uint32) {
		if n, ok := gen.Seq(out, innerOff); ok {
			seq.Add(n)
		}
	}}
	e, err := dataplane.New(src, sink, dataplane.Config{
		Policy: steer.Microflow, Workers: workers, Batch: batch, Unordered: unordered,
		Stages: []dataplane.Stage{&dataplane.DecapStage{}, &dataplane.ChecksumStage{Rounds: 1}},
	})
	if err != nil {
		return Sample{}, fmt.Errorf("creating engine: %w", err)
	}
	before, _ := ReadProcStat()
	start := time.Now()
	if err := e.Run(ctx); err != nil {
		return Sample{}, fmt.Errorf("running engine: %w", err)
	}
	el := time.Since(start)
	after, _ := ReadProcStat()
	st := e.Stats()
	s := Sample{Sent: count, Recv: seq.Received, Seconds: el.Seconds(), CPU: CPUUsage(before, after)}
	s.Metrics = map[string]float64{
		MOutOfOrder:    float64(seq.OutOfOrder),
		MReorderEvents: float64(seq.Jumps),
		MDuplicates:    float64(seq.Duplicates),
		MLossPct:       100 * float64(seq.Lost(count)) / float64(count),
		MMergerWaits:   float64(st.Merger.Waits),
		MDeliveredMpps: float64(seq.Received) / el.Seconds() / 1e6,
	}
	if seq.Received > 0 {
		s.Metrics[MOutOfOrderPct] = 100 * float64(seq.OutOfOrder) / float64(seq.Received)
	}
	return s, nil
}
