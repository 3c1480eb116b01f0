package traffic

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestStreamCheck: a stream written from the pattern in writes of one size
// and read back in chunks of other sizes checks clean; one altered byte,
// a lost chunk or two swapped chunks are reported at the right offset.
func TestStreamCheck(t *testing.T) {
	const span = 4096
	p := newPattern(span)
	if !bytes.Equal(p.at(patternPeriod-3, 10), append(append([]byte{}, p[patternPeriod-3:patternPeriod]...), p[:7]...)) {
		t.Fatal("pattern does not wrap at its period")
	}
	var stream []byte
	for len(stream) < 5*patternPeriod {
		stream = append(stream, p.at(int64(len(stream)), 1000)...)
	}
	feed := func(b []byte) *streamCheck {
		c := newStreamCheck(p)
		r := rand.New(rand.NewPCG(1, 2))
		for len(b) > 0 {
			k := min(len(b), 1+r.IntN(span))
			c.add(b[:k])
			b = b[k:]
		}
		return c
	}
	if c := feed(stream); c.err() != nil || c.n != int64(len(stream)) {
		t.Fatalf("clean stream: %v after %d bytes", c.err(), c.n)
	}
	bad := append([]byte{}, stream...)
	bad[200000] ^= 1
	if c := feed(bad); c.bad != 200000 || c.err() == nil {
		t.Errorf("altered byte reported at %d", c.bad)
	}
	lost := append(append([]byte{}, stream[:70000]...), stream[71460:]...)
	// The first byte that differs is at the cut, or a few bytes later when
	// the stream's bytes happen to match there.
	if c := feed(lost); c.bad < 70000 || c.bad > 70016 {
		t.Errorf("lost chunk reported at %d", c.bad)
	}
	swapped := append(append(append([]byte{}, stream[:100000]...), stream[101460:102920]...), stream[100000:101460]...)
	swapped = append(swapped, stream[102920:]...)
	if c := feed(swapped); c.bad < 100000 || c.bad > 100016 {
		t.Errorf("swapped chunks reported at %d", c.bad)
	}
}

// TestStreamCheckSampled: with sampling, a chunk checked in full reports
// any altered byte, every chunk reports one in its first or last
// edgeCheck bytes and a shifted (lost) chunk; a byte in the middle of a
// chunk that is not sampled goes unseen, which is the documented price.
func TestStreamCheckSampled(t *testing.T) {
	const chunk = 4096
	p := newPattern(chunk)
	var stream []byte
	for len(stream) < 64*chunk {
		stream = append(stream, p.at(int64(len(stream)), chunk)...)
	}
	feed := func(b []byte) *streamCheck {
		c := newStreamCheck(p)
		c.every = 8
		for len(b) > 0 {
			k := min(len(b), chunk)
			c.add(b[:k])
			b = b[k:]
		}
		return c
	}
	if c := feed(stream); c.err() != nil || c.n != int64(len(stream)) {
		t.Fatalf("clean stream: %v after %d bytes", c.err(), c.n)
	}
	flip := func(at int) []byte {
		b := append([]byte{}, stream...)
		b[at] ^= 0x80
		return b
	}
	for _, tc := range []struct {
		name   string
		at     int
		caught bool
	}{
		{"middle of a full chunk (8th)", 8*chunk + chunk/2, true},
		{"first bytes of an edge-checked chunk", 3*chunk + 5, true},
		{"last bytes of an edge-checked chunk", 4*chunk - 3, true},
		{"middle of an edge-checked chunk", 5*chunk + chunk/2, false},
	} {
		c := feed(flip(tc.at))
		if got := c.err() != nil; got != tc.caught {
			t.Errorf("%s: caught %v, want %v", tc.name, got, tc.caught)
		} else if tc.caught && c.bad != int64(tc.at) {
			t.Errorf("%s: reported at %d, want %d", tc.name, c.bad, tc.at)
		}
	}
	lost := append(append([]byte{}, stream[:10*chunk+100]...), stream[10*chunk+1560:]...)
	if c := feed(lost); c.err() == nil {
		t.Error("a lost piece of the stream went unseen")
	}
}
