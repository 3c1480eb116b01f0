package tap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"mflow/internal/csum"
)

const coOffset = 64

// flowSegs builds n consecutive segments of one TCP/IPv4 flow with the
// given payload sizes (the oracle: gopacket), IPv4 IDs incrementing, the
// last one with PSH; each in its own buffer at coOffset.
func flowSegs(t testing.TB, sizes []int, seq uint32, port uint16) [][]byte {
	t.Helper()
	var out [][]byte
	for i, n := range sizes {
		s := pktSpec{seq: seq, id: 100 + uint16(i), psh: i == len(sizes)-1, payload: payload(n)}
		f := build(t, s)
		binary.BigEndian.PutUint16(f[34:], port) // source port (checksum fixed below)
		fixTCPChecksum(f)
		b := make([]byte, coOffset+len(f))
		copy(b[coOffset:], f)
		out = append(out, b)
		seq += uint32(n)
	}
	return out
}

func fixTCPChecksum(f []byte) {
	ip := f[14:]
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	tcp := ip[20:tot]
	tcp[16], tcp[17] = 0, 0
	c := ^csum.Fold(csum.Sum(tcp, csum.Sum(ip[12:20], 0)+protoTCP+uint64(len(tcp))))
	binary.BigEndian.PutUint16(tcp[16:], c)
}

// expand plans bufs with a coalescer and cuts every planned packet back
// with Segment: the coalescer must be lossless and keep order.
func expand(t *testing.T, bufs [][]byte) (frames [][]byte, pkts, supers int) {
	t.Helper()
	var c coalescer
	c.arena = make([]byte, coalesceArena)
	done := 0
	for done < len(bufs) {
		k := c.plan(bufs[done:], coOffset)
		if k == 0 {
			t.Fatalf("plan made no progress at frame %d", done)
		}
		nf := 0
		for _, p := range c.out {
			nf += p.frames
			pkts++
			if p.frames > 1 {
				supers++
			}
			out, sizes := newBufs(p.frames, 2000)
			n, r := Segment(p.pkt, out, sizes, 0)
			if r != OK || n != p.frames {
				t.Fatalf("Segment of a planned packet = %d, %v; want %d frames", n, r, p.frames)
			}
			for i := 0; i < n; i++ {
				frames = append(frames, out[i][:sizes[i]])
			}
		}
		if nf != k {
			t.Fatalf("plan consumed %d frames but planned %d", k, nf)
		}
		done += k
	}
	return frames, pkts, supers
}

func checkExpand(t *testing.T, bufs [][]byte, wantPkts, wantSupers int) {
	t.Helper()
	orig := make([][]byte, len(bufs))
	for i, b := range bufs {
		orig[i] = append([]byte(nil), b[coOffset:]...)
	}
	frames, pkts, supers := expand(t, bufs)
	if len(frames) != len(orig) {
		t.Fatalf("%d frames in, %d out", len(orig), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(frames[i], orig[i]) {
			t.Errorf("frame %d changed:\ngot  %s\nwant %s", i, describe(frames[i]), describe(orig[i]))
		}
	}
	if pkts != wantPkts || supers != wantSupers {
		t.Errorf("%d packets with %d super-frames, want %d with %d", pkts, supers, wantPkts, wantSupers)
	}
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestCoalesce(t *testing.T) {
	t.Run("one run", func(t *testing.T) {
		checkExpand(t, flowSegs(t, repeat(10, 1400), 1, 40000), 1, 1)
	})
	t.Run("short last", func(t *testing.T) {
		checkExpand(t, flowSegs(t, append(repeat(5, 1400), 300), 1, 40000), 1, 1)
	})
	t.Run("single segment", func(t *testing.T) {
		checkExpand(t, flowSegs(t, []int{1400}, 1, 40000), 1, 0)
	})
	t.Run("two flows", func(t *testing.T) {
		a := flowSegs(t, repeat(4, 1400), 1, 40000)
		b := flowSegs(t, repeat(3, 1400), 1, 40001)
		checkExpand(t, append(a, b...), 2, 2)
	})
	t.Run("interleaved flows", func(t *testing.T) {
		a := flowSegs(t, repeat(3, 1400), 1, 40000)
		b := flowSegs(t, repeat(3, 1400), 1, 40001)
		checkExpand(t, [][]byte{a[0], b[0], a[1], b[1], a[2], b[2]}, 6, 0)
	})
	t.Run("sequence gap", func(t *testing.T) {
		a := flowSegs(t, repeat(6, 1000), 1, 40000)
		checkExpand(t, append(a[:3:3], a[4:]...), 2, 2)
	})
	t.Run("shorter segment ends the run", func(t *testing.T) {
		checkExpand(t, flowSegs(t, []int{1000, 1000, 500, 1000, 1000}, 1, 40000), 2, 2)
	})
	t.Run("longer segment breaks the run", func(t *testing.T) {
		checkExpand(t, flowSegs(t, []int{1000, 1000, 1200, 1200}, 1, 40000), 2, 2)
	})
	t.Run("psh in the middle ends the run", func(t *testing.T) {
		a := flowSegs(t, repeat(6, 1000), 1, 40000)
		a[2][coOffset+14+20+13] |= tcpFlagPSH
		fixTCPChecksum(a[2][coOffset:])
		checkExpand(t, a, 2, 2)
	})
	t.Run("bad checksum is not merged", func(t *testing.T) {
		a := flowSegs(t, repeat(6, 1000), 1, 40000)
		a[3][len(a[3])-1] ^= 1 // corrupt the payload of segment 3
		checkExpand(t, a, 3, 2)
	})
	t.Run("not tcp in between", func(t *testing.T) {
		a := flowSegs(t, repeat(4, 1000), 1, 40000)
		u := build(t, pktSpec{udp: true, payload: payload(100)})
		ub := append(make([]byte, coOffset), u...)
		checkExpand(t, [][]byte{a[0], a[1], ub, a[2], a[3]}, 3, 2)
	})
	t.Run("64 segments at most", func(t *testing.T) {
		checkExpand(t, flowSegs(t, repeat(100, 500), 1, 40000), 2, 2)
	})
	t.Run("64 KiB at most", func(t *testing.T) {
		checkExpand(t, flowSegs(t, repeat(60, 1400), 1, 40000), 2, 2)
	})
	t.Run("arena full", func(t *testing.T) {
		// 6 runs of 46 KiB do not fit in one 256 KiB arena.
		var all [][]byte
		for i := 0; i < 6; i++ {
			all = append(all, flowSegs(t, repeat(33, 1400), 1, uint16(40000+i))...)
		}
		checkExpand(t, all, 6, 6)
	})
}

// TestCoalescePseudoChecksum checks the header of a super-frame: GSO
// fields, IPv4 total length and checksum, and the pseudo-header sum in the
// TCP checksum field that NEEDS_CSUM requires.
func TestCoalescePseudoChecksum(t *testing.T) {
	bufs := flowSegs(t, repeat(4, 1000), 7, 40000)
	var c coalescer
	c.arena = make([]byte, coalesceArena)
	if k := c.plan(bufs, coOffset); k != 4 || len(c.out) != 1 {
		t.Fatalf("plan = %d frames in %d packets, want 4 in 1", k, len(c.out))
	}
	p := c.out[0].pkt
	var h VirtioNetHdr
	h.Decode(p)
	if want := (VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}); h != want {
		t.Errorf("virtio header %+v, want %+v", h, want)
	}
	ip := p[VirtioNetHdrLen+14:]
	if tot := binary.BigEndian.Uint16(ip[2:]); tot != 20+20+4000 || len(p) != VirtioNetHdrLen+14+int(tot) {
		t.Errorf("IPv4 total length %d, packet %d bytes", tot, len(p))
	}
	if csum.Fold(csum.Sum(ip[:20], 0)) != 0xffff {
		t.Errorf("bad IPv4 header checksum")
	}
	want := csum.Fold(csum.Sum(ip[12:20], 0) + protoTCP + 4020)
	if got := binary.BigEndian.Uint16(ip[20+16:]); got != want {
		t.Errorf("TCP checksum field %#x, want the pseudo-header sum %#x", got, want)
	}
	if c.out[0].bytes != 4*(14+20+20+1000) {
		t.Errorf("bytes = %d", c.out[0].bytes)
	}
}

func TestCoalesceAllocs(t *testing.T) {
	bufs := flowSegs(t, repeat(64, 1400), 1, 40000)
	var c coalescer
	c.arena = make([]byte, coalesceArena)
	c.plan(bufs, coOffset) // grow c.out
	allocs := testing.AllocsPerRun(100, func() { c.plan(bufs, coOffset) })
	if allocs != 0 {
		t.Errorf("plan allocates %v times per batch, want 0", allocs)
	}
}

func BenchmarkCoalesce64x1400(b *testing.B) {
	bufs := flowSegs(b, repeat(64, 1400), 1, 40000)
	var c coalescer
	c.arena = make([]byte, coalesceArena)
	b.ReportAllocs()
	b.SetBytes(64 * 1454)
	for b.Loop() {
		c.plan(bufs, coOffset)
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds()/1e6, "Mframes/s")
}

// FuzzCoalesce builds a sequence of segments of two flows from the fuzz
// input (sizes, gaps, PSH, corruption, interleaving) and checks that
// planning and re-segmenting gives back exactly the input frames.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{10, 10, 10, 10, 10, 3})
	f.Add([]byte{200, 200, 0x81, 200, 0x42, 200, 200})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 120 {
			ops = ops[:120]
		}
		seqs := [2]uint32{1, 1 << 31}
		var bufs [][]byte
		for i, op := range ops {
			fl := int(op>>7) & 1
			size := 6 + int(op&0x1f)*45
			s := pktSpec{seq: seqs[fl], id: uint16(i), payload: payload(size), psh: op&0x20 != 0}
			fr := build(t, s)
			binary.BigEndian.PutUint16(fr[34:], uint16(40000+fl))
			fixTCPChecksum(fr)
			if op&0x40 != 0 && op&0x20 != 0 {
				fr[len(fr)-1] ^= 0x55 // corrupt
			}
			seqs[fl] += uint32(size)
			if op&0x60 == 0x40 {
				seqs[fl] += 7 // gap
			}
			bufs = append(bufs, append(make([]byte, coOffset), fr...))
		}
		orig := make([][]byte, len(bufs))
		for i, b := range bufs {
			orig[i] = append([]byte(nil), b[coOffset:]...)
		}
		frames, _, _ := expand(t, bufs)
		if len(frames) != len(orig) {
			t.Fatalf("%d frames in, %d out", len(orig), len(frames))
		}
		for i := range frames {
			// IPv4 IDs are renumbered inside a super-frame (first ID + i);
			// everything else must be identical.
			a, b := frames[i], orig[i]
			if len(a) != len(b) || !bytes.Equal(a[:18], b[:18]) || !bytes.Equal(a[20:24], b[20:24]) || !bytes.Equal(a[26:], b[26:]) {
				t.Fatalf("frame %d changed:\ngot  %s\nwant %s", i, describe(a), describe(b))
			}
		}
	})
}

// FuzzCoalesceUDP interleaves datagrams of two UDP flows of varying sizes,
// some corrupted, some without a checksum, and checks that coalescing and
// the kernel's cutting (Segment, the same rules in user space) give back
// every datagram unchanged but for the IPv4 identification.
func FuzzCoalesceUDP(f *testing.F) {
	f.Add([]byte{10, 10, 10, 10, 10, 3})
	f.Add([]byte{0x9f, 0x9f, 0x1f, 0x9f, 0x5f, 0x1f, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 120 {
			ops = ops[:120]
		}
		var bufs [][]byte
		for i, op := range ops {
			fl := int(op>>7) & 1
			size := 6 + int(op&0x1f)*45
			fr := build(t, pktSpec{udp: true, id: uint16(i), payload: payload(size)})
			binary.BigEndian.PutUint16(fr[34:], uint16(40000+fl))
			if op&0x20 != 0 {
				fr[40], fr[41] = 0, 0 // no checksum
			} else {
				fixUDPChecksum(fr)
			}
			if op&0x60 == 0x60 {
				fr[len(fr)-1] ^= 0x55 // corrupt a datagram that has no checksum: still passes
			} else if op&0x40 != 0 {
				fr[len(fr)-1] ^= 0x55 // corrupt: must not be merged
			}
			bufs = append(bufs, append(make([]byte, coOffset), fr...))
		}
		orig := make([][]byte, len(bufs))
		for i, b := range bufs {
			orig[i] = append([]byte(nil), b[coOffset:]...)
		}
		frames, _, _ := expand(t, bufs)
		if len(frames) != len(orig) {
			t.Fatalf("%d frames in, %d out", len(orig), len(frames))
		}
		for i := range frames {
			a, b := frames[i], orig[i]
			// Ethernet padding of a short datagram is not part of it: a
			// datagram cut out of a super-frame comes back without.
			b = b[:14+int(binary.BigEndian.Uint16(b[16:]))]
			a = a[:min(len(a), 14+int(binary.BigEndian.Uint16(a[16:])))]
			// A datagram sent without a checksum may come back with one.
			if b[40] == 0 && b[41] == 0 {
				a = append([]byte(nil), a...)
				a[40], a[41] = 0, 0
			}
			if len(a) != len(b) || !bytes.Equal(a[:18], b[:18]) || !bytes.Equal(a[20:24], b[20:24]) || !bytes.Equal(a[26:], b[26:]) {
				t.Fatalf("frame %d changed:\ngot  %x\nwant %x", i, a, b)
			}
		}
	})
}

// fixUDPChecksum recomputes the UDP checksum of an Ethernet/IPv4/UDP frame.
func fixUDPChecksum(fr []byte) {
	ip := fr[14:]
	udp := ip[20:binary.BigEndian.Uint16(ip[2:])]
	udp[6], udp[7] = 0, 0
	c := ^csum.Fold(csum.Sum(udp, csum.Sum(ip[12:20], 0)+protoUDP+uint64(len(udp))))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}
