package xsk

// Tests and benchmarks driven by the live-frames generator (bench/gen) in
// the peer namespace.

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/gen"
)

// genFrame builds a VxLAN frame of size bytes from the peer to the host.
func (b *bed) genFrame(t testing.TB, size int) gen.Frame {
	t.Helper()
	f, err := gen.BuildFrame(gen.FrameSpec{
		SrcMAC: b.peerMAC, DstMAC: b.hostMAC, SrcIP: peerIP, DstIP: hostIP, SrcPort: 40000, VNI: 42,
		Inner: &gen.FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 2},
			SrcIP: netip.MustParseAddr("10.42.0.1"), DstIP: netip.MustParseAddr("10.42.0.2"), SrcPort: 5000, DstPort: 5001,
		},
		Size: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// pin locks the goroutine to its thread and the thread to cpu (when the
// machine has it); the returned func undoes both.
func pin(cpu int) func() {
	runtime.LockOSThread()
	var old unix.CPUSet
	if unix.SchedGetaffinity(0, &old) != nil || cpu >= runtime.NumCPU() {
		return runtime.UnlockOSThread
	}
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set)
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}

// rxLoop receives and releases until stop is closed and the socket has
// been idle for idle, calling onFrame (if not nil) for each frame. It
// returns the number of frames and when the last one arrived.
func rxLoop(s *Socket, batch int, stop <-chan struct{}, idle time.Duration, onFrame func([]byte), count *atomic.Uint64) (last time.Time) {
	descs := make([]Desc, batch)
	stopped := false
	var idleSince time.Time
	for {
		k := s.Receive(descs)
		if k == 0 {
			if !stopped {
				select {
				case <-stop:
					stopped = true
					idleSince = time.Now()
				default:
				}
			}
			if stopped && time.Since(idleSince) > idle {
				return last
			}
			s.Poll(time.Millisecond)
			continue
		}
		if onFrame != nil {
			for _, d := range descs[:k] {
				onFrame(s.Frame(d))
			}
		}
		s.Release(descs[:k])
		count.Add(uint64(k))
		last = time.Now()
		if stopped {
			idleSince = last
		}
	}
}

func TestReceiveFromGenerator(t *testing.T) {
	b := newBed(t, bedOpts{})
	// Rings large enough to hold the whole run: no loss even if the
	// receiver does not get a CPU while the generator runs.
	const n = 4000
	s := b.open(t, 0, Options{NumFrames: 8192, FillSize: 4096, RxSize: 4096, CompletionSize: 64, TxSize: 64, InitialFill: 4096})
	f := b.genFrame(t, 128)
	var got [][]byte
	stop := make(chan struct{})
	done := make(chan struct{})
	var count atomic.Uint64
	go func() {
		defer close(done)
		rxLoop(s, 64, stop, 200*time.Millisecond, func(p []byte) { got = append(got, bytes.Clone(p)) }, &count)
	}()
	st, err := gen.Run(context.Background(), b.peer, peerLink, f.Data, gen.Options{Count: n, SeqOffset: f.SeqOffset, BatchSize: 64})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generator: %+v (%.2f Mpps)", st, st.Mpps())
	if st.Sent != n || st.LinkTxDropped != 0 {
		t.Fatalf("generator sent %d, dropped %d; want %d and 0", st.Sent, st.LinkTxDropped, n)
	}
	want := make([][]byte, n)
	for i := range want {
		want[i] = bytes.Clone(f.Data)
		binary.BigEndian.PutUint64(want[i][f.SeqOffset:], uint64(i))
	}
	seen := make([]bool, n)
	for _, p := range got {
		seq, ok := gen.Seq(p, f.SeqOffset)
		if !ok || seq >= n {
			t.Fatalf("frame with bad sequence number %d", seq)
		}
		if seen[seq] {
			t.Errorf("frame %d received twice", seq)
		}
		seen[seq] = true
		if !bytes.Equal(p, want[seq]) {
			t.Errorf("frame %d differs:\n got %x\nwant %x", seq, p, want[seq])
		}
	}
	if len(got) != n {
		ks, _ := s.Stats()
		t.Errorf("received %d of %d frames (kernel stats %+v)", len(got), n, ks.Kernel)
	}
}

// BenchmarkReceive measures receive-and-release packets per second against
// the live-frames generator with 128-byte frames: one generator thread on
// CPU 0 (on veth the host's XDP program and the copy into UMEM run there
// too), the receive loop on CPU 1. Reported: Mpps (frames received per
// second of the run), gen-Mpps (the generator's own rate), loss (fraction
// of sent frames not received).
func BenchmarkReceive(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			benchReceive(b, func(tb *bed) func(stop <-chan struct{}, count *atomic.Uint64) time.Time {
				s := tb.open(b, 0, Options{})
				return func(stop <-chan struct{}, count *atomic.Uint64) time.Time {
					return rxLoop(s, batch, stop, 50*time.Millisecond, nil, count)
				}
			})
		})
	}
}

// benchReceive runs the generator for max(b.N, 200000) frames while the
// loop that setup returns receives.
func benchReceive(b *testing.B, setup func(*bed) func(stop <-chan struct{}, count *atomic.Uint64) time.Time) {
	tb := newBed(b, bedOpts{})
	loop := setup(tb)
	f := tb.genFrame(b, 128)
	n := uint64(max(b.N, 200000))
	var count atomic.Uint64
	stop := make(chan struct{})
	done := make(chan time.Time)
	go func() {
		unpin := pin(1)
		defer unpin()
		done <- loop(stop, &count)
	}()
	b.ResetTimer()
	start := time.Now()
	st, err := gen.Run(context.Background(), tb.peer, peerLink, f.Data, gen.Options{Count: n, CPUs: []int{0}, BatchSize: 64})
	close(stop)
	last := <-done
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	got := count.Load()
	elapsed := last.Sub(start) // until the last frame arrived
	if got == 0 {
		b.Fatal("nothing received")
	}
	b.ReportMetric(float64(got)/elapsed.Seconds()/1e6, "Mpps")
	b.ReportMetric(st.Mpps(), "gen-Mpps")
	b.ReportMetric(1-float64(got)/float64(st.Sent), "loss")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(max(got, 1)), "ns/pkt")
}

// BenchmarkTransmit measures Alloc + Transmit + Complete of 128-byte frames
// out of the host end of the wire; the peer end drops them in XDP so that
// its cost stays small. Reported: Mpps completed.
func BenchmarkTransmit(b *testing.B) {
	tb := newBed(b, bedOpts{noXDP: true})
	drop, err := loadDrop(tb)
	if err != nil {
		b.Fatal(err)
	}
	defer drop.Close()
	s := tb.open(b, 0, Options{RxSize: -1, InitialFill: -1, TxSize: 2048, CompletionSize: 2048})
	frame := tb.vxFrame(b, 0, 40000, 128)
	descs := make([]Desc, 256)
	unpin := pin(1)
	defer unpin()
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		k := s.Alloc(descs[:min(len(descs), b.N-done)])
		for j := range descs[:k] {
			descs[j].Len = uint32(copy(s.Frame(descs[j]), frame))
		}
		m, err := s.Transmit(descs[:k])
		if err != nil {
			b.Fatal(err)
		}
		s.Free(descs[m:k])
		done += s.Complete()
		if k == 0 {
			s.Poll(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/b.Elapsed().Seconds()/1e6, "Mpps")
	for s.Accounting().Tx > 0 {
		s.Poll(time.Millisecond)
		s.Complete()
	}
}

// TestMultiQueueGenerator sends from one pinned generator thread at a time:
// on veth the receiving queue is the sending CPU modulo the queue count, so
// every frame of a run must reach the socket of that queue and no other.
func TestMultiQueueGenerator(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	const queues = 2
	b := newBed(t, bedOpts{queues: queues})
	socks := make([]*Socket, queues)
	for q := range socks {
		socks[q] = b.open(t, q, Options{NumFrames: 4096, FillSize: 2048, RxSize: 2048, TxSize: 64, CompletionSize: 64, InitialFill: 2048})
	}
	f := b.genFrame(t, 128)
	const n = 1500
	for cpu := 0; cpu < queues; cpu++ {
		st, err := gen.Run(context.Background(), b.peer, peerLink, f.Data, gen.Options{Count: n, CPUs: []int{cpu}, SeqOffset: f.SeqOffset})
		if err != nil {
			t.Fatal(err)
		}
		if st.Sent != n {
			t.Fatalf("generator sent %d, want %d", st.Sent, n)
		}
		for q, s := range socks {
			want := 0
			if q == cpu%queues {
				want = n
			}
			got := collect(t, s, want, 2*time.Second)
			if want == 0 {
				// Give stray frames a moment to show up.
				got = append(got, collect(t, s, 1, 100*time.Millisecond)...)
			}
			if len(got) != want {
				t.Errorf("generator on CPU %d: queue %d received %d frames, want %d", cpu, q, len(got), want)
			}
			for _, p := range got {
				if seq, _ := gen.Seq(p, f.SeqOffset); seq >= n {
					t.Errorf("queue %d: sequence number %d out of range", q, seq)
				}
			}
		}
	}
}
