package vxlan

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestFDB(t *testing.T) {
	var f FDB
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	a, b := [4]byte{192, 0, 2, 2}, [4]byte{192, 0, 2, 3}
	if _, ok := f.Lookup(1, mac); ok || f.Len() != 0 || f.Flood(1) != nil {
		t.Fatal("zero FDB is not empty")
	}
	if r := f.Learn(1, mac, a, 10); r != LearnAdded {
		t.Fatalf("first Learn: %v", r)
	}
	if r := f.Learn(1, mac, a, 11); r != LearnKnown {
		t.Fatalf("refresh: %v", r)
	}
	if v, ok := f.Lookup(1, mac); !ok || v != a {
		t.Fatalf("Lookup = %v %v", v, ok)
	}
	if _, ok := f.Lookup(2, mac); ok {
		t.Fatal("entry leaked into another VNI")
	}
	if r := f.Learn(1, mac, b, 12); r != LearnMoved {
		t.Fatalf("station move: %v", r)
	}
	if v, _ := f.Lookup(1, mac); v != b {
		t.Fatalf("after move Lookup = %v", v)
	}
	static := [6]byte{2, 0, 0, 0, 0, 2}
	f.SetStatic(1, static, a)
	if r := f.Learn(1, static, b, 13); r != LearnStatic {
		t.Fatalf("learning over a static entry: %v", r)
	}
	if n := f.Expire(13); n != 1 {
		t.Fatalf("Expire removed %d, want 1 (the learned entry last seen at 12)", n)
	}
	if _, ok := f.Lookup(1, mac); ok {
		t.Fatal("expired entry still there")
	}
	if v, ok := f.Lookup(1, static); !ok || v != a {
		t.Fatal("static entry expired")
	}
	peers := [][4]byte{a, b}
	f.SetFlood(1, peers)
	peers[0] = [4]byte{} // the FDB keeps its own copy
	if fl := f.Flood(1); len(fl) != 2 || fl[0] != a || fl[1] != b {
		t.Fatalf("Flood = %v", fl)
	}
	f.SetFlood(1, nil)
	if f.Flood(1) != nil {
		t.Fatal("flood list not removed")
	}
}

// TestFDBConcurrent runs lock-free readers against writers under -race.
func TestFDBConcurrent(t *testing.T) {
	var f FDB
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := byte(0); i < 16; i++ {
					if v, ok := f.Lookup(7, [6]byte{2, 0, 0, 0, 0, i}); ok && v[0] != 192 {
						t.Errorf("torn entry %v", v)
						return
					}
				}
				_ = f.Flood(7)
			}
		}()
	}
	for i := 0; i < 200; i++ {
		f.Learn(7, [6]byte{2, 0, 0, 0, 0, byte(i % 16)}, [4]byte{192, 0, 2, byte(i)}, int64(i))
		if i%50 == 0 {
			f.SetFlood(7, [][4]byte{{192, 0, 2, byte(i)}})
			f.Expire(int64(i - 20))
		}
	}
	close(stop)
	wg.Wait()
}

// randomMACs returns n distinct unicast MACs from a seeded generator.
func randomMACs(n int, seed uint64) [][6]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := make(map[[6]byte]bool, n)
	out := make([][6]byte, 0, n)
	for len(out) < n {
		var m [6]byte
		v := r.Uint64()
		for i := range m {
			m[i] = byte(v >> (8 * i))
		}
		m[0] &^= 1 // unicast
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// TestFDBLimit: a VNI holds at most Limit learned entries; refusals say
// so, known stations still refresh and move, static entries and other
// VNIs are not limited, and expiry makes room again.
func TestFDBLimit(t *testing.T) {
	var f FDB
	f.SetLimits(100, 0)
	a, b := [4]byte{192, 0, 2, 2}, [4]byte{192, 0, 2, 3}
	macs := randomMACs(150, 1)
	counts := map[LearnResult]int{}
	for _, m := range macs {
		counts[f.Learn(1, m, a, 1)]++
	}
	if counts[LearnAdded] != 100 || counts[LearnFull] != 50 || f.Learned(1) != 100 || f.Len() != 100 {
		t.Fatalf("results %v, %d learned, %d entries; want 100 added, 50 refused", counts, f.Learned(1), f.Len())
	}
	for _, m := range macs[100:] {
		if _, ok := f.Lookup(1, m); ok {
			t.Fatal("a refused station is in the table")
		}
	}
	if r := f.Learn(1, macs[0], a, 2); r != LearnKnown {
		t.Errorf("refresh of a known station when full: %v", r)
	}
	if r := f.Learn(1, macs[1], b, 2); r != LearnMoved {
		t.Errorf("move of a known station when full: %v", r)
	}
	f.SetStatic(1, macs[120], b)
	if v, ok := f.Lookup(1, macs[120]); !ok || v != b || f.Learned(1) != 100 {
		t.Errorf("static entry on a full VNI: %v %v, %d learned", v, ok, f.Learned(1))
	}
	if r := f.Learn(2, macs[140], a, 2); r != LearnAdded {
		t.Errorf("another VNI: %v", r)
	}
	// Every station but the two heard at time 2 expires at cutoff 2.
	if n := f.Expire(2); n != 98 {
		t.Fatalf("Expire removed %d, want 98", n)
	}
	if r := f.Learn(1, macs[130], a, 3); r != LearnAdded || f.Learned(1) != 3 {
		t.Errorf("after expiry: %v, %d learned; want added, 3", r, f.Learned(1))
	}
}

// TestFDBRate: each VTEP may make Rate changes per unit of time; known
// stations refresh regardless.
func TestFDBRate(t *testing.T) {
	var f FDB
	f.SetLimits(0, 10)
	a, b := [4]byte{192, 0, 2, 2}, [4]byte{192, 0, 2, 3}
	macs := randomMACs(60, 2)
	count := func(ms [][6]byte, vtep [4]byte, now int64) map[LearnResult]int {
		c := map[LearnResult]int{}
		for _, m := range ms {
			c[f.Learn(7, m, vtep, now)]++
		}
		return c
	}
	if c := count(macs[:20], a, 5); c[LearnAdded] != 10 || c[LearnRateLimited] != 10 {
		t.Fatalf("20 new stations from one VTEP in one second: %v; want 10 added, 10 rate limited", c)
	}
	if c := count(macs[20:35], b, 5); c[LearnAdded] != 10 || c[LearnRateLimited] != 5 {
		t.Fatalf("another VTEP, same second: %v; want 10 added, 5 rate limited", c)
	}
	if c := count(macs[:10], a, 5); c[LearnKnown] != 10 {
		t.Fatalf("known stations, rate used up: %v; want 10 known", c)
	}
	if c := count(macs[10:20], a, 6); c[LearnAdded] != 10 {
		t.Fatalf("the next second: %v; want 10 added", c)
	}
	if c := count(macs[:5], b, 6); c[LearnMoved] != 5 {
		t.Fatalf("moves count as changes too: %v", c)
	}
}

// TestFDBGrowth: many stations, lookups after growth, expiry and reuse of
// removed slots.
func TestFDBGrowth(t *testing.T) {
	var f FDB
	macs := randomMACs(100000, 3)
	for i, m := range macs {
		if r := f.Learn(9, m, [4]byte{10, 0, byte(i >> 8), byte(i)}, int64(i%2)); r != LearnAdded {
			t.Fatalf("station %d: %v", i, r)
		}
	}
	if f.Len() != len(macs) {
		t.Fatalf("Len %d, want %d", f.Len(), len(macs))
	}
	check := func(stage string, want func(i int) bool) {
		t.Helper()
		for i, m := range macs {
			v, ok := f.Lookup(9, m)
			if ok != want(i) || ok && v != [4]byte{10, 0, byte(i >> 8), byte(i)} {
				t.Fatalf("%s: station %d: %v %v", stage, i, v, ok)
			}
		}
	}
	check("learned", func(int) bool { return true })
	if n := f.Expire(1); n != len(macs)/2 {
		t.Fatalf("Expire removed %d, want %d", n, len(macs)/2)
	}
	check("expired", func(i int) bool { return i%2 == 1 })
	for i, m := range macs {
		if i%2 == 0 {
			f.Learn(9, m, [4]byte{10, 0, byte(i >> 8), byte(i)}, 2)
		}
	}
	check("relearned", func(int) bool { return true })
	if _, ok := f.Lookup(9, [6]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff}); ok {
		t.Fatal("found a station never learned")
	}
}

// TestFDBLearnCost: learning a new station costs O(1) amortised, not a copy
// of the table: 2000 new stations into a table of 20000 allocate a few
// hundred bytes each, where copying the table would allocate megabytes
// per station.
func TestFDBLearnCost(t *testing.T) {
	var f FDB
	macs := randomMACs(22000, 4)
	for _, m := range macs[:20000] {
		f.Learn(1, m, [4]byte{192, 0, 2, 2}, 1)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, m := range macs[20000:] {
		f.Learn(1, m, [4]byte{192, 0, 2, 2}, 1)
	}
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / 2000
	t.Logf("%.0f bytes allocated per new station in a table of 20000", per)
	if per > 2048 {
		t.Errorf("%.0f bytes allocated per new station: learning is not O(1)", per)
	}
}

// TestFDBConcurrentGrowth: while writers learn many new stations (the
// table grows several times), readers always find the stations learned
// before, with their VTEPs. Run with -race.
func TestFDBConcurrentGrowth(t *testing.T) {
	var f FDB
	f.SetLimits(0, 0)
	known := randomMACs(64, 5)
	for i, m := range known {
		f.Learn(3, m, [4]byte{192, 0, 2, byte(i)}, 1)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var lookups atomic.Int64
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i, m := range known {
					if v, ok := f.Lookup(3, m); !ok || v != [4]byte{192, 0, 2, byte(i)} {
						t.Errorf("known station %d: %v %v during growth", i, v, ok)
						return
					}
				}
				lookups.Add(1)
			}
		}()
	}
	var writers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for _, m := range randomMACs(20000, uint64(10+w)) {
				f.Learn(3, m, [4]byte{198, 51, 100, byte(w)}, 1)
				if m[5] == 0 {
					f.Expire(0) // nothing to remove, but walks the table under the lock
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if f.Len() < 40000 || lookups.Load() == 0 {
		t.Fatalf("%d entries, %d lookup rounds", f.Len(), lookups.Load())
	}
}
