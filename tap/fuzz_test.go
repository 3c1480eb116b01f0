package tap

import (
	"bytes"
	"testing"

	"mflow/internal/csum"
)

// FuzzSegment feeds arbitrary TAP packets to Segment and checks its
// invariants: a verdict is OK with at least one frame or a known drop
// reason with none; every frame lies in its buffer; a plain frame comes out
// unchanged except for the checksum field; segments of a super-frame carry
// the original payload in order, valid IPv4 header checksums and valid
// TCP/UDP checksums.
func FuzzSegment(f *testing.F) {
	for _, s := range []pktSpec{
		{seq: 1000, psh: true, fin: true, payload: payload(5000)},
		{v6: true, seq: 1, payload: payload(3000)},
		{udp: true, payload: payload(2500)},
		{udp: true, v6: true, vlan: true, payload: payload(700)},
		{tsOption: true, vlan: true, payload: payload(2000)},
	} {
		frame := build(f, s)
		f.Add(superFrame(s, frame, 1000), uint8(8), uint16(1100), uint8(0))
		f.Add(superFrame(s, frame, 0), uint8(1), uint16(9000), uint8(50))
	}
	f.Add([]byte{}, uint8(1), uint16(100), uint8(0))
	f.Fuzz(func(t *testing.T, pkt []byte, nbufs uint8, bufSize uint16, offset uint8) {
		bufs, sizes := newBufs(int(nbufs%70), int(bufSize%9100))
		orig := append([]byte(nil), pkt...)
		n, r := Segment(pkt, bufs, sizes, int(offset))
		if !bytes.Equal(pkt, orig) {
			t.Fatal("Segment modified its input")
		}
		if r >= NumReasons {
			t.Fatalf("unknown reason %d", r)
		}
		if r != OK {
			if n != 0 {
				t.Fatalf("dropped (%v) but returned %d frames", r, n)
			}
			return
		}
		if n < 1 || n > len(bufs) {
			t.Fatalf("OK with %d frames for %d buffers", n, len(bufs))
		}
		for i := 0; i < n; i++ {
			if sizes[i] < 14 || int(offset)+sizes[i] > len(bufs[i]) {
				t.Fatalf("frame %d: size %d outside buffer of %d at offset %d", i, sizes[i], len(bufs[i]), offset)
			}
		}
		var h VirtioNetHdr
		h.Decode(pkt)
		frame := pkt[VirtioNetHdrLen:]
		if h.GSOType&^GSOECN == GSONone {
			got := bufs[0][offset : int(offset)+sizes[0]]
			if n != 1 || len(got) != len(frame) {
				t.Fatalf("plain frame: %d frames of %d bytes, want 1 of %d", n, len(got), len(frame))
			}
			field := -1
			if h.Flags&FlagNeedsCsum != 0 {
				field = int(h.CsumStart) + int(h.CsumOffset)
			}
			for i := range got {
				if got[i] != frame[i] && i != field && i != field+1 {
					t.Fatalf("plain frame changed at byte %d (checksum field %d)", i, field)
				}
			}
			return
		}
		// A segmented super-frame.
		l4 := int(h.CsumStart)
		isTCP := h.GSOType&^GSOECN != GSOUDPL4
		l4len := 8
		if isTCP {
			l4len = int(frame[l4+12]>>4) * 4
		}
		var cat []byte
		for i := 0; i < n; i++ {
			seg := bufs[i][offset : int(offset)+sizes[i]]
			if !bytes.Equal(seg[:l3Of(frame)], frame[:l3Of(frame)]) {
				t.Fatalf("segment %d: link header changed", i)
			}
			if isIPv4(frame) {
				if csum.Fold(csum.Sum(seg[l3Of(frame):l4], 0)) != 0xffff {
					t.Fatalf("segment %d: bad IPv4 header checksum", i)
				}
			}
			proto := uint32(protoUDP)
			if isTCP {
				proto = protoTCP
			}
			var ps uint64
			l3 := l3Of(frame)
			if isIPv4(frame) {
				ps = csum.Sum(seg[l3+12:l3+20], 0)
			} else {
				ps = csum.Sum(seg[l3+8:l3+40], 0)
			}
			ps += uint64(proto) + uint64(len(seg)-l4)
			if c := csum.Fold(csum.Sum(seg[l4:], ps)); c != 0xffff {
				t.Fatalf("segment %d: bad L4 checksum (sum %#x)", i, c)
			}
			cat = append(cat, seg[l4+l4len:]...)
		}
		if !bytes.Equal(cat, frame[l4+l4len:]) {
			t.Fatalf("segments carry %d payload bytes, not the %d of the super-frame", len(cat), len(frame)-l4-l4len)
		}
		// The cursor path (Read with few buffers) gives the same frames.
		two, twoSizes := newBufs(2, len(bufs[0]))
		for from := 0; from < n; {
			k, total, r := segment(pkt, two, twoSizes, int(offset), from, true)
			if r != OK || total != n || k != min(2, n-from) {
				t.Fatalf("cursor at %d: %d, %d, %v; want %d of %d", from, k, total, r, min(2, n-from), n)
			}
			for i := 0; i < k; i++ {
				if !bytes.Equal(two[i][offset:int(offset)+twoSizes[i]], bufs[from+i][offset:int(offset)+sizes[from+i]]) {
					t.Fatalf("cursor: frame %d differs", from+i)
				}
			}
			from += k
		}
	})
}

func l3Of(frame []byte) int {
	if frame[12] == 0x81 && frame[13] == 0x00 {
		return 18
	}
	return 14
}

func isIPv4(frame []byte) bool {
	l3 := l3Of(frame)
	return frame[l3-2] == 0x08 && frame[l3-1] == 0x00
}

// FuzzParsePacket checks ParsePacket against Segment on arbitrary TAP
// packets: it drops exactly what Segment (given room for every segment)
// drops, with the same reason, and otherwise counts Segment's frames and
// their bytes (WireBytes) without touching the packet.
func FuzzParsePacket(f *testing.F) {
	for _, s := range []pktSpec{
		{seq: 1000, psh: true, fin: true, payload: payload(5000)},
		{v6: true, seq: 1, payload: payload(3000)},
		{udp: true, payload: payload(2500)},
		{udp: true, v6: true, vlan: true, payload: payload(700)},
		{tsOption: true, vlan: true, payload: payload(2000)},
	} {
		frame := build(f, s)
		f.Add(superFrame(s, frame, 1000))
		f.Add(superFrame(s, frame, 0))
		f.Add(superFrame(s, frame, 7))
	}
	f.Add([]byte{})
	bufs, sizes := newBufs(1100, 9100)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := append([]byte(nil), pkt...)
		l, r := ParsePacket(pkt)
		if !bytes.Equal(pkt, orig) {
			t.Fatal("ParsePacket modified its input")
		}
		n, sr := Segment(pkt, bufs, sizes, 0)
		if sr == DropTooManySegments || sr == DropBufferTooSmall {
			return // Segment's room, not the packet
		}
		if r != sr {
			t.Fatalf("ParsePacket says %v, Segment %v", r, sr)
		}
		if r != OK {
			return
		}
		if l.Frames != n {
			t.Fatalf("ParsePacket counts %d frames, Segment made %d", l.Frames, n)
		}
		total := 0
		for _, s := range sizes[:n] {
			total += s
		}
		if got := l.WireBytes(len(pkt) - VirtioNetHdrLen); got != total {
			t.Fatalf("WireBytes %d, Segment's frames hold %d", got, total)
		}
		if (l.Hdr.GSOType == GSONone) != (l.HdrLen == 0) || (l.HdrLen != 0 && l.L3 != 14 && l.L3 != 18) {
			t.Fatalf("layout %+v", l)
		}
	})
}
