// Package spin is the bounded retry of mflow's receiving threads before
// they sleep (steering.spin_us): a packet that comes within the window is
// taken without a wake-up.
package spin

import (
	"runtime"
	"time"
)

// Spinner decides, at each empty try of a receiving loop, whether to try
// again or to sleep. The zero value never spins. A Spinner is used by one
// goroutine.
type Spinner struct {
	// For is the window, counted from the first empty try since the last
	// Reset; 0 or less turns spinning off.
	For time.Duration
	end time.Time
}

// Again reports whether the caller should try once more instead of
// sleeping. Within the window it first yields, to the other goroutines
// (the caller holds a processor) and then to the other threads, and
// returns true; once the window has passed it returns false, and the next
// empty try starts a new window.
func (s *Spinner) Again() bool {
	if s.For <= 0 {
		return false
	}
	now := time.Now()
	if s.end.IsZero() {
		s.end = now.Add(s.For)
	}
	if now.Before(s.end) {
		runtime.Gosched()
		yieldThread()
		return true
	}
	s.end = time.Time{}
	return false
}

// Reset says a try found something: the next empty try starts a new
// window.
func (s *Spinner) Reset() { s.end = time.Time{} }
