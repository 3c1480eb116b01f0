package reorder

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

type item struct {
	seq    int
	worker int
}

// TestOrderUnderRandomDelays dispatches to workers round robin or at
// random, lets them finish at random times, and checks that Next releases
// everything in assignment order.
func TestOrderUnderRandomDelays(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 2))
		workers, depth, window := 1+r.IntN(8), 1+r.IntN(4), 1+r.IntN(32)
		const n = 2000
		m, err := New[item](workers, depth, window)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]chan item, workers)
		var wg sync.WaitGroup
		for w := range in {
			in[w] = make(chan item, 1+r.IntN(4))
			wg.Add(1)
			go func(w int, delay *rand.Rand) {
				defer wg.Done()
				for it := range in[w] {
					if delay.IntN(10) == 0 {
						time.Sleep(time.Duration(delay.IntN(100)) * time.Microsecond)
					}
					if it.seq == 50 {
						time.Sleep(10 * time.Millisecond) // one long stall
					}
					m.Push(w, it)
				}
			}(w, rand.New(rand.NewPCG(seed, uint64(w))))
		}
		random := r.IntN(2) == 0
		go func() {
			for i := range n {
				w := i % workers
				if random {
					w = r.IntN(workers)
				}
				m.Assign(w)
				in[w] <- item{seq: i, worker: w}
			}
			m.Close()
			for _, c := range in {
				close(c)
			}
		}()
		next := 0
		for {
			it, ok := m.Next()
			if !ok {
				break
			}
			if it.seq != next {
				t.Fatalf("seed %d: released %d, want %d", seed, it.seq, next)
			}
			next++
		}
		wg.Wait()
		if next != n {
			t.Fatalf("seed %d: released %d values, want %d", seed, next, n)
		}
		st := m.Stats()
		if st.Released != n || st.MaxDepth > depth {
			t.Errorf("seed %d: stats %+v: want %d released, depth at most %d", seed, st, n, depth)
		}
		if workers > 1 && st.Waits == 0 {
			t.Errorf("seed %d: no waits although a worker stalled for 10ms", seed)
		}
	}
}

// TestBackPressure checks that a full worker queue blocks Push and a full
// window blocks Assign, instead of growing.
func TestBackPressure(t *testing.T) {
	m, err := New[int](2, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Assign(1)
	}
	blocked := func(f func()) bool {
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
			return false
		case <-time.After(50 * time.Millisecond):
			return true
		}
	}
	assigned := make(chan struct{})
	if !blocked(func() { m.Assign(0); close(assigned) }) {
		t.Fatal("Assign did not block with a full window")
	}
	m.Push(1, 10)
	m.Push(1, 11)
	pushed := make(chan struct{})
	if !blocked(func() { m.Push(1, 12); close(pushed) }) {
		t.Fatal("Push did not block with a full queue")
	}
	if m.Len(1) != 2 {
		t.Fatalf("queue 1 holds %d, want 2", m.Len(1))
	}
	for _, want := range []int{10, 11, 12} {
		if v, ok := m.Next(); !ok || v != want {
			t.Fatalf("Next = %d, %v; want %d", v, ok, want)
		}
	}
	<-assigned
	<-pushed
	m.Push(0, 20)
	m.Close()
	if v, ok := m.Next(); !ok || v != 20 {
		t.Fatalf("Next = %d, %v; want 20", v, ok)
	}
	if _, ok := m.Next(); ok {
		t.Fatal("Next after Close and drain returned a value")
	}
	if st := m.Stats(); st.Released != 4 || st.MaxDepth != 2 {
		t.Errorf("stats %+v: want 4 released, max depth 2", st)
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-1, 1, 1}} {
		if _, err := New[int](c[0], c[1], c[2]); err == nil {
			t.Errorf("New(%v) accepted", c)
		}
	}
}

// BenchmarkMerger measures the merger's cost per batch with two workers.
func BenchmarkMerger(b *testing.B) {
	m, err := New[int](2, 4, 16)
	if err != nil {
		b.Fatal(err)
	}
	in := [2]chan int{make(chan int, 4), make(chan int, 4)}
	for w := range in {
		go func() {
			for v := range in[w] {
				m.Push(w, v)
			}
		}()
	}
	go func() {
		for i := range b.N {
			m.Assign(i & 1)
			in[i&1] <- i
		}
		m.Close()
		close(in[0])
		close(in[1])
	}()
	b.ReportAllocs()
	for i := 0; ; i++ {
		v, ok := m.Next()
		if !ok {
			break
		}
		if v != i {
			b.Fatalf("got %d, want %d", v, i)
		}
	}
}
