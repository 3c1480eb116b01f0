package daemon

import (
	"bytes"
	"encoding/binary"
	"testing"

	"mflow/tap"
	"mflow/vxlan"
)

// FuzzUDPRun feeds udpRun frames cut from arbitrary bytes (as a TAP read
// would return them, behind the tunnel path's headroom) and checks that
// it never panics, merges either nothing or a run of at least two
// datagrams that tap.Segment (an independent cutter) splits back into
// exactly those datagrams' payloads, in order, with lengths that add up.
func FuzzUDPRun(f *testing.F) {
	dgram := func(payload, port int) []byte {
		b := make([]byte, 42+payload)
		b[12], b[13], b[14], b[23] = 0x08, 0x00, 0x45, 17
		binary.BigEndian.PutUint16(b[16:], uint16(28+payload))
		binary.BigEndian.PutUint16(b[34:], uint16(port))
		binary.BigEndian.PutUint16(b[38:], uint16(8+payload))
		for i := range payload {
			b[42+i] = byte(i + port)
		}
		return b
	}
	join := func(fs ...[]byte) []byte {
		var out []byte
		for _, x := range fs {
			out = binary.BigEndian.AppendUint16(out, uint16(len(x)))
			out = append(out, x...)
		}
		return out
	}
	f.Add(join(dgram(100, 1), dgram(100, 1), dgram(50, 1)))
	f.Add(join(dgram(100, 1), dgram(100, 2)))
	f.Add(join(dgram(1400, 7), dgram(1400, 7), dgram(1400, 7), dgram(1400, 7)))
	f.Add([]byte{0, 3, 1, 2, 3})
	dst := make([]byte, tunHead+14+0xFFFF)
	f.Fuzz(func(t *testing.T, in []byte) {
		// in: frames, each a 16-bit length then its bytes.
		var frames [][]byte
		var layouts []tap.Layout
		for len(in) >= 2 && len(frames) < tunBatch {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			if n > len(in) {
				n = len(in)
			}
			frames = append(frames, append([]byte(nil), in[:n]...))
			layouts = append(layouts, tap.Layout{Frames: 1})
			in = in[n:]
		}
		if len(frames) == 0 {
			return
		}
		n, l, size := udpRun(frames, layouts, dst)
		if n == 0 {
			return
		}
		if n < 2 || n > len(frames) || l.Frames != n || size > 14+0xFFFF {
			t.Fatalf("run of %d of %d frames, layout %+v, %d bytes", n, len(frames), l, size)
		}
		pkt := make([]byte, tap.VirtioNetHdrLen+size)
		l.Hdr.Encode(pkt)
		copy(pkt[tap.VirtioNetHdrLen:], dst[tunHead:tunHead+size])
		bufs, sizes := make([][]byte, n+1), make([]int, n+1)
		for k := range bufs {
			bufs[k] = make([]byte, 14+0xFFFF)
		}
		k, r := tap.Segment(pkt, bufs, sizes, 0)
		if r != tap.OK || k != n {
			t.Fatalf("Segment of the run: %d frames, %v; merged %d", k, r, n)
		}
		for i := range n {
			tot := 14 + vxlan.IPv4(frames[i][14:]).TotalLen()
			want := frames[i][42:tot]
			if got := bufs[i][42:sizes[i]]; !bytes.Equal(got, want) {
				t.Fatalf("datagram %d: payload of %d bytes, want %d", i, len(got), len(want))
			}
		}
	})
}
