package xsk_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"mflow/xsk"
	"mflow/xsk/xsktest"
)

// conformance checks the xsk.Queue contract on q; inject delivers frames
// as if from the wire, frame(i) builds the i-th test frame.
func conformance(t *testing.T, q xsk.Queue, inject func([][]byte), frame func(uint64) []byte) {
	check := func(when string) {
		t.Helper()
		if err := q.Accounting().Check(); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	a := q.Accounting()
	check("start")
	if a.Rx != 16 || a.Free != a.Frames-16 {
		t.Errorf("start: %+v, want 16 frames for rx", a)
	}
	var sent [][]byte
	for i := 0; i < 10; i++ {
		sent = append(sent, frame(uint64(i)))
	}
	inject(sent)
	descs := make([]xsk.Desc, 16)
	got := 0
	deadline := time.Now().Add(3 * time.Second)
	for got < len(sent) && time.Now().Before(deadline) {
		if _, err := q.Poll(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n := q.Receive(descs[got:])
		for i, d := range descs[got : got+n] {
			if !bytes.Equal(q.Frame(d), sent[got+i]) {
				t.Errorf("frame %d differs", got+i)
			}
		}
		got += n
	}
	if got != len(sent) {
		t.Fatalf("received %d frames, want %d", got, len(sent))
	}
	if a := q.Accounting(); a.InFlight != 10 {
		t.Errorf("after receive: in flight %d, want 10", a.InFlight)
	}
	check("after receive")
	// Release by address alone, as the daemon does with the handles
	// that travelled with the frames.
	rel := make([]xsk.Desc, 0, got)
	for _, d := range descs[:got] {
		rel = append(rel, xsk.Desc{Addr: d.Addr})
	}
	q.Release(rel)
	if a := q.Accounting(); a.InFlight != 0 || a.Rx != 16 {
		t.Errorf("after release: %+v, want 16 in rx and none in flight", a)
	}
	q.Release(descs[:1])
	if a := q.Accounting(); a.Invalid != 1 {
		t.Errorf("double release: invalid %d, want 1", a.Invalid)
	}

	n := q.Alloc(descs[:5])
	if n != 5 {
		t.Fatalf("Alloc = %d, want 5", n)
	}
	for i := range descs[:n] {
		descs[i].Len = uint32(copy(q.Frame(descs[i]), frame(uint64(100+i))))
	}
	if m, err := q.Transmit(descs[:n]); m != n || err != nil {
		t.Fatalf("Transmit = %d, %v", m, err)
	}
	done := 0
	deadline = time.Now().Add(3 * time.Second)
	for done < n && time.Now().Before(deadline) {
		if _, err := q.PollTx(10 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		done += q.Complete()
	}
	if a := q.Accounting(); done != n || a.Tx != 0 || a.InFlight != 0 {
		t.Errorf("completed %d of %d; accounting %+v", done, n, a)
	}
	check("after transmit")
	st, err := q.Stats()
	if err != nil || st.Received != 10 || st.Transmitted != 5 || st.Completed != 5 {
		t.Errorf("stats %+v, %v", st, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Transmit(descs[:1]); !errors.Is(err, xsk.ErrClosed) {
		t.Errorf("Transmit after Close: %v, want ErrClosed", err)
	}
}

var confOpts = xsk.Options{NumFrames: 64, FillSize: 16, RxSize: 16, TxSize: 16, CompletionSize: 16}

func TestConformanceSocket(t *testing.T) {
	s, inject, frame := xsk.OpenTestQueue(t, confOpts)
	conformance(t, s, inject, frame)
}

func TestConformanceFake(t *testing.T) {
	s, err := xsktest.New(confOpts)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(i uint64) []byte {
		f := make([]byte, 128)
		f[0], f[1] = byte(i), byte(i>>8)
		return f
	}
	conformance(t, s, func(frames [][]byte) {
		for _, f := range frames {
			if !s.Inject(f) {
				t.Errorf("Inject refused a frame")
			}
		}
	}, frame)
}
