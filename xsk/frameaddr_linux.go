package xsk

import "unsafe"

// DescOf returns the descriptor of a frame slice obtained from Frame (or a
// sub-slice of one): its address in UMEM and its length. It reports false
// for a slice that does not point into this socket's UMEM. It lets a caller
// that passes frames around as byte slices, such as the dataplane engine,
// hand them back without keeping the descriptors.
func (s *Socket) DescOf(frame []byte) (Desc, bool) {
	if len(frame) == 0 || len(s.umem) == 0 {
		return Desc{}, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.umem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(frame)))
	if p < base || p >= base+uintptr(len(s.umem)) {
		return Desc{}, false
	}
	return Desc{Addr: uint64(p - base), Len: uint32(len(frame))}, true
}
