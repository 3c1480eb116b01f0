package memio

import "unsafe"

// index returns the buffer that frame f starts in, from its address in the
// arena (Go's heap objects do not move, so the arithmetic is stable).
func (s *Source) index(f []byte) (int32, bool) {
	if cap(f) == 0 || len(s.arena) == 0 {
		return -1, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.arena)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(f)))
	if p < base || p >= base+uintptr(len(s.arena)) {
		return -1, false
	}
	off := p - base
	if off%uintptr(s.cfg.FrameSize) != 0 {
		return -1, false
	}
	return int32(off / uintptr(s.cfg.FrameSize)), true
}
