package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"mflow/xsk"
)

// xskSource adapts an AF_XDP socket to steer.Source: Read hands out
// received frames as byte slices aliasing UMEM, Release gives them back to
// the fill ring. Read and Release run on different goroutines; the socket
// is safe for that, and each side has its own descriptor buffer.
type xskSource struct {
	s       *xsk.Socket
	rd      []xsk.Desc // Read's buffer
	rel     []xsk.Desc // Release's buffer
	foreign atomic.Uint64
}

func newXSKSource(s *xsk.Socket, batch int) *xskSource {
	return &xskSource{s: s, rd: make([]xsk.Desc, batch), rel: make([]xsk.Desc, 0, batch)}
}

// pollInterval bounds how long Read sleeps in poll before it looks at ctx.
const pollInterval = 50 * time.Millisecond

// Read implements steer.Source.
func (x *xskSource) Read(ctx context.Context, dst [][]byte) (int, error) {
	if len(dst) > len(x.rd) {
		dst = dst[:len(x.rd)]
	}
	for {
		if n := x.s.Receive(x.rd[:len(dst)]); n > 0 {
			for i := range n {
				dst[i] = x.s.Frame(x.rd[i])
			}
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := x.s.PollRx(pollInterval); err != nil {
			return 0, err
		}
	}
}

// Release implements steer.Source.
func (x *xskSource) Release(frames [][]byte) {
	for len(frames) > 0 {
		k := min(len(frames), cap(x.rel))
		x.rel = x.rel[:0]
		for _, f := range frames[:k] {
			d, ok := x.s.DescOf(f)
			if !ok {
				// Not ours: a bug upstream. Count it rather than
				// corrupt the UMEM accounting.
				x.foreign.Add(1)
				continue
			}
			x.rel = append(x.rel, d)
		}
		x.s.Release(x.rel)
		frames = frames[k:]
	}
}
