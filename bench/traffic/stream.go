package traffic

import (
	"bytes"
	"fmt"
	"sync"
)

// MaxWrite is the largest write size of Bulk (the pattern's span).
const MaxWrite = 16 << 20

// edgeCheck is how many bytes at each end of a read that is not checked
// in full are checked.
const edgeCheck = 64

var (
	patOnce sync.Once
	patMem  pattern
)

// streamPattern returns the pattern with a span of MaxWrite, made once per
// process.
func streamPattern() pattern {
	patOnce.Do(func() { patMem = newPattern(MaxWrite) })
	return patMem
}

// patternPeriod is the period of the byte stream of Bulk and TCPStream:
// prime, so that neither the write sizes nor the reader's buffer line up
// with it and a chunk delivered at the wrong offset does not compare equal.
const patternPeriod = 65521

// pattern is the byte stream Bulk and TCPStream send: byte i of the stream
// is pattern[i % patternPeriod]; the slice holds the period and then span
// more bytes, so that any n ≤ span bytes from any offset are one
// contiguous slice (at). Checking a chunk is a memory comparison, cheap enough that
// the receiver's check does not limit the measured goodput (hashing every
// byte would).
type pattern []byte

func newPattern(span int) pattern {
	p := make(pattern, patternPeriod+span)
	x := uint32(2463534242)
	for i := range patternPeriod {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x >> 24)
	}
	for i := patternPeriod; i < len(p); i++ {
		p[i] = p[i-patternPeriod]
	}
	return p
}

// at returns the n bytes of the stream from offset off.
func (p pattern) at(off int64, n int) []byte {
	o := int(off % patternPeriod)
	return p[o : o+n]
}

// streamCheck compares a received stream with the pattern, chunk by
// chunk, and remembers the first offset where they differ. With every > 1
// it samples: every every-th chunk (the first included) is compared in
// full, the others at their first and last edgeCheck bytes.
type streamCheck struct {
	pat    pattern
	n      int64 // bytes received
	chunks int64
	every  int64 // 0 or 1: every chunk in full
	bad    int64 // offset of the first differing byte, -1 while none
}

func newStreamCheck(p pattern) *streamCheck { return &streamCheck{pat: p, bad: -1} }

// add checks the next chunk; len(b) must not exceed the pattern's span.
func (c *streamCheck) add(b []byte) {
	if c.bad < 0 {
		if c.every <= 1 || c.chunks%c.every == 0 || len(b) <= 2*edgeCheck {
			c.compare(b, 0)
		} else {
			c.compare(b[:edgeCheck], 0)
			c.compare(b[len(b)-edgeCheck:], len(b)-edgeCheck)
		}
	}
	c.n += int64(len(b))
	c.chunks++
}

// compare checks b, which starts at byte off of the current chunk.
func (c *streamCheck) compare(b []byte, off int) {
	want := c.pat.at(c.n+int64(off), len(b))
	if c.bad >= 0 || bytes.Equal(b, want) {
		return
	}
	for i := range b {
		if b[i] != want[i] {
			c.bad = c.n + int64(off+i)
			return
		}
	}
}

// err reports the first difference, or nil.
func (c *streamCheck) err() error {
	if c.bad < 0 {
		return nil
	}
	return fmt.Errorf("stream content differs from what was sent at byte %d", c.bad)
}
