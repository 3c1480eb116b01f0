package daemon

import (
	"context"
	"time"

	"mflow/batch"
	"mflow/internal/spin"
	"mflow/xsk"
)

// xskSource adapts an AF_XDP socket to steer.Source: Read hands out
// received frames as byte slices aliasing UMEM, each with its descriptor's
// address as handle, and Release gives them back to the fill ring by those
// addresses. Read and Release run on different goroutines; the socket is
// safe for that, and each side has its own descriptor buffer.
type xskSource struct {
	s    xsk.Queue
	spin spin.Spinner // retries before waiting in poll
	rd   []xsk.Desc   // Read's buffer
	rel  []xsk.Desc   // Release's buffer
}

func newXSKSource(s xsk.Queue, n int) *xskSource {
	return &xskSource{s: s, rd: make([]xsk.Desc, n), rel: make([]xsk.Desc, 0, n)}
}

// pollInterval bounds how long Read sleeps in poll before it looks at ctx.
const pollInterval = 50 * time.Millisecond

// Read implements steer.Source.
func (x *xskSource) Read(ctx context.Context, dst [][]byte, handles []batch.Handle) (int, error) {
	if len(dst) > len(x.rd) {
		dst = dst[:len(x.rd)]
	}
	for {
		if n := x.s.Receive(x.rd[:len(dst)]); n > 0 {
			x.spin.Reset()
			for i, d := range x.rd[:n] {
				dst[i], handles[i] = x.s.Frame(d), batch.Handle(d.Addr)
			}
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if x.spin.Again() {
			continue
		}
		if _, err := x.s.PollRx(pollInterval); err != nil {
			return 0, err
		}
	}
}

// Release implements steer.Source. A handle that is not a frame the
// caller owns is ignored by the socket and counted in its
// Accounting.Invalid.
func (x *xskSource) Release(handles []batch.Handle) {
	for len(handles) > 0 {
		k := min(len(handles), cap(x.rel))
		x.rel = x.rel[:0]
		for _, h := range handles[:k] {
			x.rel = append(x.rel, xsk.Desc{Addr: uint64(h)})
		}
		x.s.Release(x.rel)
		handles = handles[k:]
	}
}
