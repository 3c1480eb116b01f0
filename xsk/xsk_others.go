//go:build !linux

package xsk

import "time"

// AF_XDP is Linux's: on this system Open fails, so no Socket with rings
// exists and the methods below are never reached with one.

func open(ifindex, queue int, o Options) (*Socket, error) { return nil, ErrUnsupported }

func (s *Socket) readStats() (Stats, error) { return Stats{}, ErrUnsupported }

func (s *Socket) close() error { return nil }

func (s *Socket) wakeRx() {}

func (s *Socket) wakeTx() error { return ErrUnsupported }

func (s *Socket) poll(timeout time.Duration, want pollWant) (bool, error) {
	return false, ErrUnsupported
}
