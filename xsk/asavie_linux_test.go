package xsk

// The measurement behind the package doc's choice of backend: the same
// receive-and-release benchmark on asavie/xdp v0.3.3's rings (used as
// economically as it allows: received descriptors go straight back to the
// fill ring, GetDescs only once at start).

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asavie/xdp"
)

func BenchmarkReceiveAsavie(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			benchReceive(b, func(tb *bed) func(stop <-chan struct{}, count *atomic.Uint64) time.Time {
				var xs *xdp.Socket
				if err := tb.host.Do(func() error {
					var err error
					xs, err = xdp.NewSocket(tb.hostIdx, 0, &xdp.SocketOptions{
						NumFrames: DefaultNumFrames, FrameSize: DefaultFrameSize,
						FillRingNumDescs: DefaultRingSize, CompletionRingNumDescs: DefaultRingSize,
						RxRingNumDescs: DefaultRingSize, TxRingNumDescs: DefaultRingSize,
					})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				// asavie's Close leaves the rings mapped (the socket lives
				// on until the namespace and its veth are deleted).
				b.Cleanup(func() { xs.Close() })
				if err := tb.prog.Register(0, xs.FD()); err != nil {
					b.Fatal(err)
				}
				xs.Fill(xs.GetDescs(DefaultRingSize))
				return func(stop <-chan struct{}, count *atomic.Uint64) time.Time {
					var last, idleSince time.Time
					stopped := false
					for {
						n := xs.NumReceived()
						if n == 0 {
							if !stopped {
								select {
								case <-stop:
									stopped = true
									idleSince = time.Now()
								default:
								}
							}
							if stopped && time.Since(idleSince) > 50*time.Millisecond {
								return last
							}
							xs.Poll(1)
							continue
						}
						descs := xs.Receive(min(n, batch))
						xs.Fill(descs)
						count.Add(uint64(len(descs)))
						last = time.Now()
						if stopped {
							idleSince = last
						}
					}
				}
			})
		})
	}
}
