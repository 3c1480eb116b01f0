package xsk

import "time"

// RetryFor is how long TransmitRetry keeps trying while the tx ring is
// full.
const RetryFor = 10 * time.Millisecond

// TransmitRetry puts out on q's tx ring in order, retrying for up to
// RetryFor while the ring is full (reaping completions in between and
// waiting on the socket, PollTx, for room: no sleeps), or until stop
// (when not nil) says to give up. It returns how many
// descriptors the ring took, which the caller no longer owns, and the
// error of a wakeup the kernel refused or of the wait on the socket (the
// device is gone or down, or the socket closed); the caller still owns
// out[n:].
func TransmitRetry(q Queue, out []Desc, stop func() bool) (int, error) {
	var deadline time.Time
	sent := 0
	for {
		n, err := q.Transmit(out[sent:])
		sent += n
		if sent == len(out) || err != nil || (stop != nil && stop()) {
			return sent, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(RetryFor)
		} else if time.Now().After(deadline) {
			return sent, nil
		}
		if left := time.Until(deadline); q.Complete() == 0 && left > 0 {
			if _, err := q.PollTx(left); err != nil {
				return sent, err
			}
		}
	}
}
