package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"mflow/batch"
	"mflow/dataplane/memio"
	"mflow/steer"
)

// heavyRounds makes ChecksumStage cost about a microsecond per frame here,
// a stand-in for expensive per-packet work (crypto, GRO).
const heavyRounds = 24

// runBench moves b.N frames through an engine built from cfg and reports
// Mpps. Frames are prebuilt VxLAN frames of 16 flows.
func runBench(b *testing.B, cfg Config, frames [][]byte) {
	b.Helper()
	pool := cfg.Pool
	if pool == 0 {
		pool = 4*max(cfg.Workers, 1) + 4
	}
	src, err := memio.NewSource(memio.SourceConfig{
		Buffers: pool*cfg.Batch + 256, FrameSize: 192, Count: uint64(b.N), Templates: frames,
	})
	if err != nil {
		b.Fatal(err)
	}
	sink := &memio.Sink{}
	e, err := New(src, sink, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frames[0])))
	b.ResetTimer()
	start := time.Now()
	if err := e.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if sink.Frames() != uint64(b.N) {
		b.Fatalf("delivered %d of %d frames", sink.Frames(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds()/1e6, "Mpps")
	b.ReportMetric(0, "ns/op") // per-frame time is in Mpps; ns/op would repeat it
}

// BenchmarkEngine is the in-memory receive path with the decap stage, for
// every policy, 1/2/4 workers and batches of 32 and 256 frames.
func BenchmarkEngine(b *testing.B) {
	frames := templates(b, 16, 16)
	for _, policy := range steer.Policies() {
		for _, workers := range []int{1, 2, 4} {
			if workers > 1 && (policy == steer.Single || policy == steer.Pipeline) {
				continue
			}
			for _, batch := range []int{32, 256} {
				name := fmt.Sprintf("decap/%v/workers=%d/batch=%d", policy, workers, batch)
				b.Run(name, func(b *testing.B) {
					runBench(b, Config{Policy: policy, Workers: workers, Batch: batch, Stages: []Stage{&DecapStage{}}}, frames)
				})
			}
		}
	}
}

// BenchmarkEngineHeavy adds a CPU-heavy stage (checksums of the payload),
// where spreading one flow over workers pays off.
func BenchmarkEngineHeavy(b *testing.B) {
	frames := templates(b, 1, 16) // one elephant flow
	for _, policy := range steer.Policies() {
		for _, workers := range []int{1, 2, 4} {
			if workers > 1 && (policy == steer.Single || policy == steer.Pipeline) {
				continue
			}
			name := fmt.Sprintf("checksum/%v/workers=%d/batch=256", policy, workers)
			b.Run(name, func(b *testing.B) {
				runBench(b, Config{Policy: policy, Workers: workers, Batch: 256,
					Stages: []Stage{&DecapStage{}, &ChecksumStage{Rounds: heavyRounds}}}, frames)
			})
		}
	}
	// Microflow with the least-loaded choice instead of round robin.
	for _, workers := range []int{2, 4} {
		b.Run(fmt.Sprintf("checksum/microflow-leastloaded/workers=%d/batch=256", workers), func(b *testing.B) {
			runBench(b, Config{Policy: steer.Microflow, Workers: workers, Batch: 256, LeastLoaded: true,
				Stages: []Stage{&DecapStage{}, &ChecksumStage{Rounds: heavyRounds}}}, frames)
		})
	}
}

// jitterStage delays a batch as if each of its frames had a chance p of
// being hit by an interruption of length d (a stand-in for interrupts and
// scheduling on a busy core), so that larger batches see proportionally
// more delay, as in the kernel.
type jitterStage struct {
	seed uint64
	p    float64
	d    time.Duration
}

func (s *jitterStage) Process(b *batch.Batch) {
	r := rand.New(rand.NewPCG(s.seed, b.Seq))
	k := 0
	for range b.N {
		if r.Float64() < s.p {
			k++
		}
	}
	if k > 0 {
		time.Sleep(time.Duration(k) * s.d)
	}
}

// BenchmarkUnorderedReorder reproduces the shape of the paper's Fig. 7:
// microflow with two workers and the merger bypassed; per batch size, the
// out-of-order deliveries of one 16384-frame stream (backward jumps of the
// sequence, and frames delivered after a later one). One op is one stream.
func BenchmarkUnorderedReorder(b *testing.B) {
	const count = 16384
	for _, batch := range []int{1, 4, 16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			var events, late uint64
			for i := range b.N {
				tr := newTraffic(b, 1, 0, uint64(i))
				src, err := memio.NewSource(memio.SourceConfig{Buffers: 8192, FrameSize: 192, Count: count, Gen: tr.gen})
				if err != nil {
					b.Fatal(err)
				}
				check := newOrderCheck(false)
				e, err := New(src, &memio.Sink{Frame: check.frame}, Config{
					Policy: steer.Microflow, Workers: 2, Batch: batch, Unordered: true,
					Stages: []Stage{&DecapStage{}, &jitterStage{seed: uint64(i), p: 0.002, d: 100 * time.Microsecond}},
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				events += check.events
				late += check.late
			}
			b.ReportMetric(float64(events)/float64(b.N), "ooo-events/stream")
			b.ReportMetric(float64(late)/float64(b.N), "late-frames/stream")
		})
	}
}

// BenchmarkHeavySpeedup measures the speedup of microflow with two workers
// over single on the CPU-heavy stage as a ratio of paired runs (the two
// alternate, so that load from other processes hits both alike). One op is
// one pair of 200000-frame runs.
func BenchmarkHeavySpeedup(b *testing.B) {
	const count = 200000
	frames := templates(b, 1, 16)
	stages := []Stage{&DecapStage{}, &ChecksumStage{Rounds: heavyRounds}}
	timeRun := func(cfg Config) time.Duration {
		src, err := memio.NewSource(memio.SourceConfig{Buffers: 8192, FrameSize: 192, Count: count, Templates: frames})
		if err != nil {
			b.Fatal(err)
		}
		e, err := New(src, &memio.Sink{}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := e.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var single, micro time.Duration
	for range b.N {
		single += timeRun(Config{Policy: steer.Single, Batch: 256, Stages: stages})
		micro += timeRun(Config{Policy: steer.Microflow, Workers: 2, Batch: 256, Stages: stages})
	}
	n := float64(b.N) * count
	b.ReportMetric(n/single.Seconds()/1e6, "single-Mpps")
	b.ReportMetric(n/micro.Seconds()/1e6, "microflow2-Mpps")
	b.ReportMetric(single.Seconds()/micro.Seconds(), "speedup")
}
