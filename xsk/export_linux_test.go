package xsk

import "testing"

// OpenTestQueue (for the external conformance test) returns a socket on
// the host end of a fresh namespace pair with the program attached, a
// function that sends frames to it from the peer, and a builder of test
// frames. The socket is closed when the test ends.
func OpenTestQueue(t *testing.T, o Options) (*Socket, func(frames [][]byte), func(seq uint64) []byte) {
	b := newBed(t, bedOpts{})
	var s *Socket
	if err := b.host.Do(func() error {
		var err error
		s, err = Open(b.hostIdx, 0, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := b.prog.Register(0, s.FD()); err != nil {
		t.Fatal(err)
	}
	raw := newRawSocket(t, b.peer, peerLink, 0)
	inject := func(frames [][]byte) {
		for _, f := range frames {
			raw.send(t, f)
		}
	}
	return s, inject, func(seq uint64) []byte { return b.vxFrame(t, seq, 40000, 128) }
}
