package steer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"mflow/batch"
	"mflow/dataplane/memio"
	"mflow/steer"
)

func TestParsePolicy(t *testing.T) {
	for _, p := range steer.Policies() {
		got, err := steer.ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := steer.ParsePolicy("rss"); !errors.Is(err, steer.ErrUnknownPolicy) {
		t.Errorf("ParsePolicy(rss) error = %v, want ErrUnknownPolicy", err)
	}
}

// numbered returns a source of count 8-byte frames carrying their number,
// with the given read burst.
func numbered(t *testing.T, count uint64, burst int) *memio.Source {
	t.Helper()
	src, err := memio.NewSource(memio.SourceConfig{Buffers: 4096, FrameSize: 64, Count: count, Burst: burst,
		Gen: func(seq uint64, buf []byte) int {
			binary.BigEndian.PutUint64(buf, seq)
			return 8
		}})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

type sent struct {
	w     int
	seq   uint64
	first uint64
	n     int
	nums  []uint64
}

// dispatch runs d over src, recording every batch and returning it to the
// pool at once.
func dispatch(t *testing.T, d *steer.Dispatcher, src *memio.Source) []sent {
	t.Helper()
	var got []sent
	d.Source = src
	d.Send = func(w int, b *batch.Batch) {
		s := sent{w: w, seq: b.Seq, n: b.N}
		if b.Worker != w {
			t.Errorf("batch %d: Worker %d, sent to %d", b.Seq, b.Worker, w)
		}
		for _, f := range b.Frames[:b.N] {
			s.nums = append(s.nums, binary.BigEndian.Uint64(f))
		}
		got = append(got, s)
		src.Release(b.Handles[:b.N])
		d.Pool.Put(b)
	}
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.Outstanding() != 0 {
		t.Errorf("%d frames not released", src.Outstanding())
	}
	return got
}

func TestMicroflowRoundRobin(t *testing.T) {
	pool, _ := batch.NewPool(4, 10)
	// Bursts of 7 frames: batches of 10 are never filled, each read is
	// flushed at once (never wait to fill a batch).
	d := &steer.Dispatcher{Policy: steer.Microflow, Workers: 3, Pool: pool}
	got := dispatch(t, d, numbered(t, 100, 7))
	next := uint64(0)
	for k, s := range got {
		if s.seq != uint64(k) || s.w != k%3 {
			t.Errorf("batch %d: seq %d worker %d, want seq %d worker %d", k, s.seq, s.w, k, k%3)
		}
		if s.n != 7 && !(k == len(got)-1 && s.n == 100%7) {
			t.Errorf("batch %d holds %d frames, want the read burst of 7", k, s.n)
		}
		for _, v := range s.nums {
			if v != next {
				t.Fatalf("batch %d: frame %d, want %d", k, v, next)
			}
			next++
		}
	}
	if next != 100 || d.Dispatched() != uint64(len(got)) || d.Received() != 100 {
		t.Errorf("dispatched %d frames in %d batches (counters %d, %d)", next, len(got), d.Dispatched(), d.Received())
	}
	// Without a burst limit, batches are full micro-flows of 10.
	d = &steer.Dispatcher{Policy: steer.Microflow, Workers: 3, Pool: pool}
	for k, s := range dispatch(t, d, numbered(t, 95, 0)) {
		if want := min(10, 95-10*k); s.n != want {
			t.Errorf("batch %d holds %d frames, want %d", k, s.n, want)
		}
	}
}

func TestMicroflowLeastLoaded(t *testing.T) {
	pool, _ := batch.NewPool(4, 10)
	load := []int{5, 0, 3}
	d := &steer.Dispatcher{Policy: steer.Microflow, Workers: 3, Pool: pool, Load: func(w int) int { return load[w] }}
	for _, s := range dispatch(t, d, numbered(t, 50, 0)) {
		if s.w != 1 {
			t.Errorf("batch %d went to worker %d, want the idle worker 1", s.seq, s.w)
		}
	}
}

func TestSingleUsesOneWorker(t *testing.T) {
	for _, p := range []steer.Policy{steer.Single, steer.Pipeline} {
		pool, _ := batch.NewPool(2, 16)
		d := &steer.Dispatcher{Policy: p, Workers: 4, Pool: pool}
		for _, s := range dispatch(t, d, numbered(t, 100, 0)) {
			if s.w != 0 {
				t.Errorf("%v: batch %d to worker %d", p, s.seq, s.w)
			}
		}
	}
}

func TestFlowSticks(t *testing.T) {
	// A pool smaller than the number of workers must not deadlock.
	pool, _ := batch.NewPool(2, 8)
	hash := func(f []byte) uint32 { return uint32(binary.BigEndian.Uint64(f)%5) * 0x33333333 }
	d := &steer.Dispatcher{Policy: steer.Flow, Workers: 4, Pool: pool, Hash: hash}
	got := dispatch(t, d, numbered(t, 1000, 0))
	workerOf := map[uint64]int{}
	last := map[uint64]uint64{}
	total := 0
	for k, s := range got {
		if s.seq != uint64(k) {
			t.Errorf("batch %d has seq %d", k, s.seq)
		}
		for _, v := range s.nums {
			flow := v % 5
			if w, ok := workerOf[flow]; ok && w != s.w {
				t.Errorf("flow %d on workers %d and %d", flow, w, s.w)
			}
			workerOf[flow] = s.w
			if l, ok := last[flow]; ok && v <= l {
				t.Errorf("flow %d: frame %d after %d", flow, v, l)
			}
			last[flow] = v
			total++
		}
	}
	if total != 1000 {
		t.Errorf("dispatched %d frames, want 1000", total)
	}
	used := map[int]bool{}
	for _, w := range workerOf {
		used[w] = true
	}
	if len(used) < 2 {
		t.Errorf("5 flows all on %d worker(s)", len(used))
	}
}

type failingSource struct{ err error }

func (s failingSource) Read(context.Context, [][]byte, []batch.Handle) (int, error) {
	return 0, s.err
}
func (failingSource) Release([]batch.Handle) {}

func TestSourceErrors(t *testing.T) {
	pool, _ := batch.NewPool(1, 4)
	boom := errors.New("rx ring broken")
	for _, p := range []steer.Policy{steer.Microflow, steer.Flow} {
		d := &steer.Dispatcher{Policy: p, Workers: 2, Pool: pool, Source: failingSource{boom}, Send: func(int, *batch.Batch) {}}
		if err := d.Run(context.Background()); !errors.Is(err, boom) {
			t.Errorf("%v: Run = %v, want %v", p, err, boom)
		}
		d = &steer.Dispatcher{Policy: p, Workers: 2, Pool: pool, Source: failingSource{io.EOF}, Send: func(int, *batch.Batch) {}}
		if err := d.Run(context.Background()); err != nil {
			t.Errorf("%v: Run at EOF = %v, want nil", p, err)
		}
	}
	if pool.Free() != 1 {
		t.Errorf("pool has %d free batches, want 1", pool.Free())
	}
}
