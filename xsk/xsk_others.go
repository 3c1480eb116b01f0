//go:build !linux

package xsk

import "time"

// Socket is an AF_XDP socket; unavailable on this system.
type Socket struct{}

// Open returns ErrUnsupported on this system.
func Open(ifindex, queue int, o Options) (*Socket, error) {
	if _, err := o.WithDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// FD returns -1 on this system.
func (s *Socket) FD() int { return -1 }

// ZeroCopy returns false on this system.
func (s *Socket) ZeroCopy() bool { return false }

// NeedWakeup returns false on this system.
func (s *Socket) NeedWakeup() bool { return false }

// Queue returns 0 on this system.
func (s *Socket) Queue() int { return 0 }

// Options returns the zero Options on this system.
func (s *Socket) Options() Options { return Options{} }

// Frame returns nil on this system.
func (s *Socket) Frame(d Desc) []byte { return nil }

// Receive returns 0 on this system.
func (s *Socket) Receive(descs []Desc) int { return 0 }

// Release does nothing on this system.
func (s *Socket) Release(descs []Desc) {}

// Fill returns 0 on this system.
func (s *Socket) Fill(limit int) int { return 0 }

// Alloc returns 0 on this system.
func (s *Socket) Alloc(descs []Desc) int { return 0 }

// Free does nothing on this system.
func (s *Socket) Free(descs []Desc) {}

// Transmit returns ErrUnsupported on this system.
func (s *Socket) Transmit(descs []Desc) (int, error) { return 0, ErrUnsupported }

// Complete returns 0 on this system.
func (s *Socket) Complete() int { return 0 }

// Poll returns ErrUnsupported on this system.
func (s *Socket) Poll(timeout time.Duration) (bool, error) { return false, ErrUnsupported }

// PollRx returns ErrUnsupported.
func (s *Socket) PollRx(timeout time.Duration) (bool, error) { return false, ErrUnsupported }

// Stats returns ErrUnsupported on this system.
func (s *Socket) Stats() (Stats, error) { return Stats{}, ErrUnsupported }

// Accounting returns the zero Accounting on this system.
func (s *Socket) Accounting() Accounting { return Accounting{} }

// Verify returns ErrUnsupported on this system.
func (s *Socket) Verify() error { return ErrUnsupported }

// Close does nothing on this system.
func (s *Socket) Close() error { return nil }

var _ Queue = (*Socket)(nil)
