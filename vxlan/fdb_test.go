package vxlan

import (
	"sync"
	"testing"
)

func TestFDB(t *testing.T) {
	var f FDB
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	a, b := [4]byte{192, 0, 2, 2}, [4]byte{192, 0, 2, 3}
	if _, ok := f.Lookup(1, mac); ok || f.Len() != 0 || f.Flood(1) != nil {
		t.Fatal("zero FDB is not empty")
	}
	if !f.Learn(1, mac, a, 10) {
		t.Fatal("first Learn reported no change")
	}
	if f.Learn(1, mac, a, 11) {
		t.Fatal("refresh reported a change")
	}
	if v, ok := f.Lookup(1, mac); !ok || v != a {
		t.Fatalf("Lookup = %v %v", v, ok)
	}
	if _, ok := f.Lookup(2, mac); ok {
		t.Fatal("entry leaked into another VNI")
	}
	if !f.Learn(1, mac, b, 12) {
		t.Fatal("station move not learned")
	}
	if v, _ := f.Lookup(1, mac); v != b {
		t.Fatalf("after move Lookup = %v", v)
	}
	static := [6]byte{2, 0, 0, 0, 0, 2}
	f.SetStatic(1, static, a)
	if f.Learn(1, static, b, 13) {
		t.Fatal("learning overwrote a static entry")
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
