// Package memio provides in-memory frame sources and sinks for the engine
// of package dataplane, so that the whole receive path can be tested and
// benchmarked without root or network devices.
//
// Source models an AF_XDP socket: it owns a fixed arena of frame buffers
// (like a UMEM), lends frames to the engine on Read and takes them back on
// Release, and checks that every frame comes back exactly once. Sink counts
// what it is given and can hand every delivered frame to a callback.
package memio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"mflow/batch"
)

// SourceConfig describes a Source.
type SourceConfig struct {
	// Buffers is the number of frame buffers (default 4096); FrameSize
	// the size of each (default 2048).
	Buffers, FrameSize int
	// Count is how many frames the source produces before io.EOF; 0
	// means endless.
	Count uint64
	// Templates, if set, fill the buffers once at creation: buffer i gets
	// Templates[i % len(Templates)]. Reading such a source costs no copy.
	Templates [][]byte
	// Gen, if set, writes frame number seq (0, 1, …) into buf on Read and
	// returns its length (at most len(buf)). It runs on the reading
	// goroutine.
	Gen func(seq uint64, buf []byte) int
	// Burst caps the frames one Read returns, like an rx ring (0: no cap).
	Burst int
	// BurstOf, if set, caps the frames of Read number k (0, 1, …) to
	// BurstOf(k) when that is above 0 (after Burst), so a test can vary
	// what each read finds. It runs on the reading goroutine.
	BurstOf func(k uint64) int
}

// Source is an in-memory steer.Source.
//
// The zero value is not usable; create one with NewSource. Read and
// Release may run concurrently with each other and with the accessors.
type Source struct {
	cfg   SourceConfig
	arena []byte
	lens  []int32 // frame length per buffer (Templates mode)

	mu       sync.Mutex
	free     []int32 // stack of free buffer indices
	lent     []bool  // per buffer: lent out
	produced uint64
	done     bool // Count reached
	bad      error

	avail chan struct{} // signalled by Release (capacity 1)

	released atomic.Uint64
	reads    uint64 // Read calls, for BurstOf (the reading goroutine's)
}

// NewSource returns a source built from cfg.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.Buffers == 0 {
		cfg.Buffers = 4096
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = 2048
	}
	if cfg.Buffers < 0 || cfg.FrameSize < 0 || cfg.Burst < 0 {
		return nil, errors.New("create memory source: negative size")
	}
	if cfg.Gen == nil && len(cfg.Templates) == 0 {
		return nil, errors.New("create memory source: Templates or Gen is required")
	}
	s := &Source{
		cfg:   cfg,
		arena: make([]byte, cfg.Buffers*cfg.FrameSize),
		lens:  make([]int32, cfg.Buffers),
		free:  make([]int32, cfg.Buffers),
		lent:  make([]bool, cfg.Buffers),
		avail: make(chan struct{}, 1),
	}
	for i := range cfg.Buffers {
		s.free[i] = int32(cfg.Buffers - 1 - i) // buffer 0 on top
		if len(cfg.Templates) > 0 {
			t := cfg.Templates[i%len(cfg.Templates)]
			if len(t) > cfg.FrameSize {
				return nil, fmt.Errorf("create memory source: template of %d bytes exceeds frame size %d", len(t), cfg.FrameSize)
			}
			s.lens[i] = int32(copy(s.buf(int32(i)), t))
		}
	}
	return s, nil
}

func (s *Source) buf(i int32) []byte {
	off := int(i) * s.cfg.FrameSize
	return s.arena[off : off+s.cfg.FrameSize : off+s.cfg.FrameSize]
}

// Read implements steer.Source: it lends up to len(dst) frames, waiting
// while none is ready (all buffers lent); a frame's handle is its buffer's
// index. It returns io.EOF once Count frames have been produced, and ctx's
// error when ctx is done first.
func (s *Source) Read(ctx context.Context, dst [][]byte, handles []batch.Handle) (int, error) {
	if s.cfg.Burst > 0 && len(dst) > s.cfg.Burst {
		dst = dst[:s.cfg.Burst]
	}
	if s.cfg.BurstOf != nil {
		if c := s.cfg.BurstOf(s.reads); c > 0 && len(dst) > c {
			dst = dst[:c]
		}
		s.reads++
	}
	for {
		s.mu.Lock()
		n := s.take(dst, handles)
		done := s.done
		s.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if done {
			return 0, io.EOF
		}
		select {
		case <-s.avail:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// take fills dst and handles from the free list; s.mu is held.
func (s *Source) take(dst [][]byte, handles []batch.Handle) int {
	n := 0
	for n < len(dst) && len(s.free) > 0 && !s.done {
		if s.cfg.Count > 0 && s.produced >= s.cfg.Count {
			s.done = true
			break
		}
		i := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.lent[i] = true
		b := s.buf(i)
		l := int(s.lens[i])
		if s.cfg.Gen != nil {
			l = s.cfg.Gen(s.produced, b)
		}
		dst[n], handles[n] = b[:l], batch.Handle(i)
		s.produced++
		n++
	}
	if s.cfg.Count > 0 && s.produced >= s.cfg.Count {
		s.done = true
	}
	return n
}

// Release implements steer.Source: it takes frames back by their handles.
// A handle that is not one of the source's lent buffers is recorded as an
// error (see Err) and otherwise ignored.
func (s *Source) Release(handles []batch.Handle) {
	s.mu.Lock()
	for _, h := range handles {
		if h >= batch.Handle(len(s.lent)) || !s.lent[h] {
			if s.bad == nil {
				s.bad = fmt.Errorf("release frame: handle %d not lent by this source", h)
			}
			continue
		}
		s.lent[h] = false
		s.free = append(s.free, int32(h))
	}
	s.mu.Unlock()
	s.released.Add(uint64(len(handles)))
	select {
	case s.avail <- struct{}{}:
	default:
	}
}

// Produced returns the number of frames read so far.
func (s *Source) Produced() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.produced
}

// Released returns the number of frames given back so far.
func (s *Source) Released() uint64 { return s.released.Load() }

// Outstanding returns the number of frames lent and not yet released.
func (s *Source) Outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Buffers - len(s.free)
}

// Err returns the first ownership violation seen by Release (a frame
// released twice or never lent), or nil.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// Sink is an in-memory dataplane.Sink: it counts what it is given and
// passes each delivered frame to Frame, if set.
//
// The zero value is usable. Write must not be called concurrently (the
// engine does not); the counters may be read at any time.
type Sink struct {
	// Frame, if set, is called for each delivered frame, in order, with
	// its Out slice and VNI. It must not retain out.
	Frame func(out []byte, vni uint32)
	// Fail, if set, is called first for each batch; a non-nil error is
	// returned by Write and nothing is delivered.
	Fail func(b *batch.Batch) error

	frames, bytes, batches atomic.Uint64
}

// Write implements dataplane.Sink.
func (s *Sink) Write(b *batch.Batch) error {
	if s.Fail != nil {
		if err := s.Fail(b); err != nil {
			return err
		}
	}
	var n uint64
	for i, f := range b.Out[:b.Delivered] {
		if s.Frame != nil {
			s.Frame(f, b.VNI[i])
		}
		n += uint64(len(f))
	}
	s.frames.Add(uint64(b.Delivered))
	s.bytes.Add(n)
	s.batches.Add(1)
	return nil
}

// Frames returns the number of frames written.
func (s *Sink) Frames() uint64 { return s.frames.Load() }

// Bytes returns the number of bytes written.
func (s *Sink) Bytes() uint64 { return s.bytes.Load() }

// Batches returns the number of Write calls that succeeded.
func (s *Sink) Batches() uint64 { return s.batches.Load() }
