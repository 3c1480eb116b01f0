package xsk_test

import (
	"testing"
	"time"

	"mflow/xsk"
	"mflow/xsk/xsktest"
)

// stalledQueue is a Queue whose tx ring never drains: Complete reaps
// nothing.
type stalledQueue struct{ *xsktest.Socket }

func (stalledQueue) Complete() int { return 0 }

// TestTransmitRetry: frames beyond a full tx ring go out once completions
// make room, in order; a ring that never drains gives up after RetryFor
// with the caller still owning the rest; stop ends the retrying at once.
func TestTransmitRetry(t *testing.T) {
	q, err := xsktest.New(xsk.Options{NumFrames: 64, TxSize: 4, RxSize: -1, InitialFill: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := make([]xsk.Desc, 10)
	if n := q.Alloc(out); n != 10 {
		t.Fatalf("alloc %d", n)
	}
	for i := range out {
		out[i].Len = 60
		q.Frame(out[i])[0] = byte(i)
	}
	if n, err := xsk.TransmitRetry(q, out, nil); n != 10 || err != nil {
		t.Fatalf("TransmitRetry over a draining ring: %d, %v; want all 10", n, err)
	}
	for i, f := range q.Sent() {
		if f[0] != byte(i) {
			t.Fatalf("frame %d sent as %d-th: order lost", f[0], i)
		}
	}
	q.Complete()

	s := stalledQueue{q}
	if n := q.Alloc(out); n != 10 {
		t.Fatalf("alloc %d", n)
	}
	for i := range out {
		out[i].Len = 60
	}
	start := time.Now()
	n, err := xsk.TransmitRetry(s, out, nil)
	if took := time.Since(start); n != 4 || err != nil || took < xsk.RetryFor {
		t.Errorf("stalled ring: %d sent, %v, after %v; want 4, nil, after at least %v", n, err, took, xsk.RetryFor)
	}
	q.Free(out[n:]) // still ours
	// stop says to give up: no retrying, however full the ring.
	q.Complete()
	if k := q.Alloc(out); k != 10 {
		t.Fatalf("alloc %d", k)
	}
	for i := range out {
		out[i].Len = 60
	}
	start = time.Now()
	if k, err := xsk.TransmitRetry(s, out, func() bool { return true }); k != 4 || err != nil || time.Since(start) >= xsk.RetryFor {
		t.Errorf("stopped: %d sent, %v, after %v; want 4 at once", k, err, time.Since(start))
	}
	q.Free(out[4:])
	if a := q.Accounting(); a.Check() != nil || a.Tx != 4 || a.Free != 60 {
		t.Errorf("accounting %+v: %v; want the last 4 sent on the ring, the rest free", a, a.Check())
	}
}
