package memio

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"mflow/batch"
)

func TestSourceLendsAndTakesBack(t *testing.T) {
	src, err := NewSource(SourceConfig{Buffers: 4, FrameSize: 16, Count: 6, Burst: 3,
		Gen: func(seq uint64, buf []byte) int { buf[0] = byte(seq); return 1 + int(seq) }})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([][]byte, 8)
	hs := make([]batch.Handle, 8)
	n, err := src.Read(context.Background(), dst, hs)
	if n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want the burst of 3", n, err)
	}
	for i, f := range dst[:n] {
		if len(f) != 1+i || f[0] != byte(i) {
			t.Errorf("frame %d: %v", i, f)
		}
	}
	if n, _ := src.Read(context.Background(), dst[3:], hs[3:]); n != 1 {
		t.Fatalf("second Read = %d, want the last free buffer", n)
	}
	// All 4 buffers lent: Read waits until ctx is done.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n, err := src.Read(ctx, dst, hs); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with no free buffer = %d, %v; want 0, deadline exceeded", n, err)
	}
	// A Release wakes a waiting Read.
	got := make(chan int)
	go func() {
		n, _ := src.Read(context.Background(), dst[4:], hs[4:])
		got <- n
	}()
	time.Sleep(5 * time.Millisecond)
	src.Release(hs[:2])
	if n := <-got; n != 2 {
		t.Fatalf("Read after Release = %d, want 2", n)
	}
	if src.Outstanding() != 4 || src.Produced() != 6 {
		t.Errorf("outstanding %d produced %d, want 4 and 6", src.Outstanding(), src.Produced())
	}
	if n, err := src.Read(context.Background(), dst, hs); n != 0 || err != io.EOF {
		t.Errorf("Read past Count = %d, %v; want io.EOF", n, err)
	}
	src.Release(hs[2:6])
	if src.Outstanding() != 0 || src.Released() != 6 || src.Err() != nil {
		t.Errorf("outstanding %d released %d err %v", src.Outstanding(), src.Released(), src.Err())
	}
}

func TestSourceOwnership(t *testing.T) {
	src, err := NewSource(SourceConfig{Buffers: 2, FrameSize: 16, Templates: [][]byte{{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([][]byte, 2)
	hs := make([]batch.Handle, 2)
	if n, _ := src.Read(context.Background(), dst, hs); n != 2 || len(dst[1]) != 3 {
		t.Fatalf("Read = %d frames (%v)", n, dst)
	}
	src.Release(hs[:1])
	if src.Err() != nil {
		t.Fatal(src.Err())
	}
	src.Release(hs[:1]) // twice
	if src.Err() == nil {
		t.Error("double release not detected")
	}
	for name, bad := range map[string]func(own batch.Handle) batch.Handle{
		"out of range": func(batch.Handle) batch.Handle { return 7 },
		"not lent":     func(own batch.Handle) batch.Handle { return 1 - own },
	} {
		src2, _ := NewSource(SourceConfig{Buffers: 2, FrameSize: 16, Templates: [][]byte{{1, 2}}})
		own, oh := make([][]byte, 1), make([]batch.Handle, 1)
		src2.Read(context.Background(), own, oh)
		src2.Release([]batch.Handle{bad(oh[0])})
		if src2.Err() == nil || src2.Outstanding() != 1 {
			t.Errorf("%s handle: err %v, outstanding %d", name, src2.Err(), src2.Outstanding())
		}
	}
	if _, err := NewSource(SourceConfig{FrameSize: 2, Templates: [][]byte{{1, 2, 3}}}); err == nil {
		t.Error("template larger than a frame accepted")
	}
	if _, err := NewSource(SourceConfig{}); err == nil {
		t.Error("source without Templates or Gen accepted")
	}
}

func TestSink(t *testing.T) {
	var seen []uint32
	s := &Sink{Frame: func(out []byte, vni uint32) { seen = append(seen, vni+uint32(len(out))) }}
	b := batch.NewBatch(4)
	b.N, b.Delivered = 3, 2
	b.Out[0], b.Out[1], b.Out[2] = make([]byte, 10), make([]byte, 20), make([]byte, 30)
	b.VNI[0], b.VNI[1] = 100, 200
	if err := s.Write(b); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != 110 || seen[1] != 220 || s.Frames() != 2 || s.Bytes() != 30 || s.Batches() != 1 {
		t.Errorf("sink saw %v, counted %d frames %d bytes %d batches", seen, s.Frames(), s.Bytes(), s.Batches())
	}
	boom := errors.New("boom")
	s.Fail = func(*batch.Batch) error { return boom }
	if err := s.Write(b); !errors.Is(err, boom) || s.Frames() != 2 {
		t.Errorf("failing Write = %v, frames %d", err, s.Frames())
	}
}
