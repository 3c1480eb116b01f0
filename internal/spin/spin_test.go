package spin

import (
	"testing"
	"time"
)

func TestSpinner(t *testing.T) {
	var off Spinner
	if off.Again() {
		t.Fatal("the zero value spins")
	}
	s := Spinner{For: 20 * time.Millisecond}
	start := time.Now()
	n := 0
	for s.Again() {
		n++
	}
	if took := time.Since(start); n == 0 || took < s.For {
		t.Fatalf("spun %d times for %v; want some, for at least %v", n, took, s.For)
	}
	// The window has passed: the next empty try starts a new one.
	if !s.Again() {
		t.Fatal("no new window after the last one ended")
	}
	// Reset in the middle of a window: a fresh full window follows.
	time.Sleep(15 * time.Millisecond)
	s.Reset()
	time.Sleep(10 * time.Millisecond)
	if !s.Again() {
		t.Fatal("Reset did not start a new window")
	}
}
