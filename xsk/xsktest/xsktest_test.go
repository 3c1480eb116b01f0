package xsktest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"mflow/xsk"
)

func check(t *testing.T, s *Socket) {
	t.Helper()
	if err := s.Accounting().Check(); err != nil {
		t.Error(err)
	}
}

func TestReceiveRelease(t *testing.T) {
	s, err := New(xsk.Options{NumFrames: 64, FillSize: 16, RxSize: 16, TxSize: 16, CompletionSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Accounting(); a.Rx != 16 || a.Free != 48 {
		t.Fatalf("initial accounting %+v, want 16 rx and 48 free", a)
	}
	var sent [][]byte
	for i := 0; i < 20; i++ {
		f := []byte(fmt.Sprintf("frame %02d", i))
		if ok := s.Inject(f); ok != (i < 16) {
			t.Fatalf("Inject %d = %v", i, ok)
		}
		if i < 16 {
			sent = append(sent, f)
		}
	}
	st, _ := s.Stats()
	if st.Kernel.RxDropped != 4 || st.Kernel.RxFillRingEmpty != 4 {
		t.Errorf("kernel stats %+v, want 4 drops for an empty fill ring", st.Kernel)
	}
	if ok, err := s.Poll(0); !ok || err != nil {
		t.Errorf("Poll = %v, %v; want ready", ok, err)
	}
	descs := make([]xsk.Desc, 10)
	var got [][]byte
	for {
		n := s.Receive(descs)
		if n == 0 {
			break
		}
		for _, d := range descs[:n] {
			got = append(got, bytes.Clone(s.Frame(d)))
		}
		check(t, s)
		s.Release(descs[:n])
	}
	if len(got) != len(sent) {
		t.Fatalf("received %d frames, want %d", len(got), len(sent))
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d = %q, want %q", i, got[i], sent[i])
		}
	}
	if a := s.Accounting(); a.Rx != 16 || a.InFlight != 0 || a.Free != 48 {
		t.Errorf("accounting after release %+v", a)
	}
	s.Release(descs[:1]) // double release
	if a := s.Accounting(); a.Invalid != 1 {
		t.Errorf("invalid = %d, want 1", a.Invalid)
	}
	check(t, s)
}

func TestTransmit(t *testing.T) {
	s, err := New(xsk.Options{NumFrames: 64, FillSize: 16, RxSize: 16, TxSize: 8, CompletionSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	descs := make([]xsk.Desc, 12)
	n := s.Alloc(descs)
	for i, d := range descs[:n] {
		descs[i].Len = uint32(copy(s.Frame(d), fmt.Sprintf("tx %d", i)))
	}
	m, err := s.Transmit(descs[:n])
	if err != nil || m != 8 {
		t.Fatalf("Transmit = %d, %v; want 8 (tx ring size)", m, err)
	}
	check(t, s)
	if c := s.Complete(); c != 8 {
		t.Errorf("Complete = %d, want 8", c)
	}
	m2, _ := s.Transmit(descs[m:n])
	s.Complete()
	if m2 != n-m {
		t.Errorf("second Transmit = %d, want %d", m2, n-m)
	}
	sent := s.Sent()
	if len(sent) != n || string(sent[11]) != "tx 11" {
		t.Errorf("sent %q", sent)
	}
	if a := s.Accounting(); a.InFlight != 0 || a.Tx != 0 || a.Free != 48 {
		t.Errorf("accounting %+v", a)
	}
	check(t, s)
}

func TestPollTimeout(t *testing.T) {
	s, _ := New(xsk.Options{})
	start := time.Now()
	if ok, _ := s.Poll(20 * time.Millisecond); ok || time.Since(start) < 20*time.Millisecond {
		t.Errorf("Poll on an idle socket: ready %v after %v", ok, time.Since(start))
	}
	go func() { time.Sleep(10 * time.Millisecond); s.Inject(make([]byte, 60)) }()
	if ok, _ := s.Poll(-1); !ok {
		t.Error("Poll did not see the injected frame")
	}
}

func TestNoAllocs(t *testing.T) {
	s, _ := New(xsk.Options{})
	frame := make([]byte, 128)
	descs := make([]xsk.Desc, 64)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 64; i++ {
			s.Inject(frame)
		}
		n := s.Receive(descs)
		s.Release(descs[:n])
	})
	if allocs != 0 {
		t.Errorf("%v allocs per batch", allocs)
	}
}

// TestRxRingFull: a frame that finds the rx ring full is counted as the
// kernel counts it in the full XDP_STATISTICS, in rx_ring_full only (an
// empty fill ring, in TestReceiveRelease, counts in rx_dropped).
func TestRxRingFull(t *testing.T) {
	s, err := New(xsk.Options{NumFrames: 64, FillSize: 16, RxSize: 8, TxSize: 16, CompletionSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if ok := s.Inject([]byte("frame")); ok != (i < 8) {
			t.Fatalf("Inject %d = %v", i, ok)
		}
	}
	st, _ := s.Stats()
	if st.Kernel.RxRingFull != 2 || st.Kernel.RxDropped != 0 || st.Kernel.RxFillRingEmpty != 0 {
		t.Errorf("kernel stats %+v, want 2 frames counted as rx ring full only", st.Kernel)
	}
	check(t, s)
}
