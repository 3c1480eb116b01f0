package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"mflow/batch"
	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/internal/csum"
	"mflow/metrics"
	"mflow/vxlan"
)

// TestE2EPartialChecksum runs the overlay over a wire whose peer end keeps
// transmit checksum offload on, as a veth made with iproute2 has it. The
// peer's kernel VxLAN then sends ICMP with an outer UDP checksum that is
// only the pseudo-header sum, and TCP and UDP with a partial inner checksum
// under a complete outer one (local checksum offload). Like the kernel on
// such a wire, mflow accepts both by default, completes the inner checksum
// and counts them; with vtep.partial_checksum: drop it drops them under
// their own reason.
func TestE2EPartialChecksum(t *testing.T) {
	t.Run("accept", func(t *testing.T) {
		r := startDaemonOn(t, testConfig(t, "microflow", 2, 256), testbed.Options{PeerTxChecksum: true}, nil)
		if o, err := r.topo.Peer.GetOffloads(testbed.PeerWire); err != nil || !o.TxCsum {
			t.Fatalf("peer wire offloads %+v, %v: want transmit checksumming on", o, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 5, 20*time.Millisecond, 2*time.Second)
		if err != nil || p.Received != p.Sent {
			t.Errorf("ping peer → container: %+v, %v", p, err)
		}
		s := r.d.Snapshot()
		if s.PartialChecksums < 5 {
			t.Errorf("after 5 pings, %d frames counted with a partial checksum, want at least 5", s.PartialChecksums)
		}
		u, err := traffic.UDPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, traffic.UDPOptions{Size: 1000, Duration: 500 * time.Millisecond, Rate: 2000})
		if err != nil || u.Received == 0 || u.Received+u.Lost != u.Sent {
			t.Errorf("UDP peer → container: %+v, %v", u, err)
		}
		const size = 4 << 20
		tcp, err := traffic.TCPStream(ctx, r.topo.Peer, r.topo.Ctr, ctrOverlay, 30*time.Second, size)
		if err != nil || !tcp.Verified || tcp.Bytes != size {
			t.Errorf("TCP peer → container: %+v, %v", tcp, err)
		}
		t.Logf("UDP %+v; TCP %d bytes in %v, content verified %v", u, tcp.Bytes, tcp.Duration, tcp.Verified)
		if err := r.shutdown(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		s = r.d.Snapshot()
		if s.PartialChecksums < 5+u.Received {
			t.Errorf("%d frames counted with a partial checksum, want at least %d (pings and UDP datagrams)", s.PartialChecksums, 5+u.Received)
		}
		for _, reason := range []string{"bad_udp_checksum", "partial_udp_checksum"} {
			if got := dropOf(s, metrics.Decap, reason); got != 0 {
				t.Errorf("%s drops = %d, want 0", reason, got)
			}
		}
		if err := s.Check(); err != nil {
			t.Error(err)
		}
	})
	t.Run("drop", func(t *testing.T) {
		cfg := testConfig(t, "microflow", 2, 256)
		cfg.VTEP.PartialChecksum = config.PartialDrop
		r := startDaemonOn(t, cfg, testbed.Options{PeerTxChecksum: true}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := traffic.Ping(ctx, r.topo.Peer, ctrOverlay, 3, 20*time.Millisecond, 500*time.Millisecond)
		if err != nil || p.Received != 0 {
			t.Errorf("ping peer → container with partial checksums dropped: %+v, %v; want no answer", p, err)
		}
		if err := r.shutdown(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		s := r.d.Snapshot()
		// The peer's ARP requests for the container, at least.
		if got := dropOf(s, metrics.Decap, "partial_udp_checksum"); got == 0 {
			t.Error("no partial_udp_checksum drops")
		}
		if got := dropOf(s, metrics.Decap, "bad_udp_checksum"); got != 0 {
			t.Errorf("bad_udp_checksum drops = %d, want 0", got)
		}
		if s.PartialChecksums != 0 {
			t.Errorf("%d partial checksums accepted under drop", s.PartialChecksums)
		}
		if err := s.Check(); err != nil {
			t.Error(err)
		}
	})
}

// partialFrames returns two VxLAN frames from testPeer for VNI 42 as a
// sender with transmit checksum offload emits them: one whose outer UDP
// checksum is the pseudo-header sum alone, and one whose inner UDP
// checksum is, under an outer checksum computed for the completed inner
// one. complete is the second frame's inner frame as it must reach the
// device.
func partialFrames(t *testing.T) (outer, inner, complete []byte) {
	t.Helper()
	mac := net.HardwareAddr{2, 0xa, 0, 0, 0, 1}
	outer, _ = vxlanFrame(t, testPeer, 42, mac, 1)
	ulen := len(outer) - 34
	ph := csum.PseudoIPv4(testPeer.As4(), testVTEP.As4(), vxlan.ProtoUDP, ulen)
	binary.BigEndian.PutUint16(outer[40:], csum.Fold(ph))

	inner, in := vxlanFrame(t, testPeer, 42, mac, 2)
	vxlan.CompleteInnerChecksum(in)
	complete = bytes.Clone(in)
	binary.BigEndian.PutUint16(inner[40:], 0)
	binary.BigEndian.PutUint16(inner[40:], ^csum.Fold(csum.Sum(inner[34:], ph)))
	iph := csum.PseudoIPv4([4]byte(in[26:30]), [4]byte(in[30:34]), vxlan.ProtoUDP, len(in)-34)
	binary.BigEndian.PutUint16(in[40:], csum.Fold(iph))
	return outer, inner, complete
}

// TestNetworkStagePartialChecksum: the stage delivers and counts frames
// with either kind of partial checksum, completes an inner one, drops both
// under vtep.partial_checksum: drop, and allocates nothing doing it.
func TestNetworkStagePartialChecksum(t *testing.T) {
	for _, policy := range []vxlan.PartialPolicy{vxlan.PartialAccept, vxlan.PartialDrop} {
		d, _ := testDaemon()
		d.stage.dec.Partial = policy
		outer, inner, complete := partialFrames(t)
		b := batch.NewBatch(2)
		b.Frames[0], b.Frames[1] = outer, inner
		b.N = 2
		b.Begin()
		d.stage.Process(b)
		want, count := vxlan.Deliver, uint64(2)
		if policy == vxlan.PartialDrop {
			want, count = vxlan.DropPartialCsum, 0
		}
		if b.Reason[0] != want || b.Reason[1] != want || d.stage.partial.Load() != count {
			t.Fatalf("%v: reasons %v %v, %d counted; want %v, %d", policy, b.Reason[0], b.Reason[1], d.stage.partial.Load(), want, count)
		}
		if policy == vxlan.PartialDrop {
			continue
		}
		if !bytes.Equal(b.Out[1], complete) {
			t.Fatalf("inner frame not completed:\ngot  %x\nwant %x", b.Out[1], complete)
		}
		p := gopacket.NewPacket(b.Out[1], layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		// Once completed, the frame verifies as it is: a second pass
		// counts only the frame with the partial outer checksum.
		b.Begin()
		d.stage.Process(b)
		if b.Reason[0] != vxlan.Deliver || b.Reason[1] != vxlan.Deliver || d.stage.partial.Load() != 3 {
			t.Fatalf("second pass: %v %v, %d counted; want delivered, 3", b.Reason[0], b.Reason[1], d.stage.partial.Load())
		}
		outer2, inner2, _ := partialFrames(t)
		frames := [][]byte{outer2, inner2}
		if a := testing.AllocsPerRun(100, func() {
			copy(inner2, inner) // inner was completed in place: start from a partial one again
			b.Frames[0], b.Frames[1] = frames[0], frames[1]
			b.Begin()
			d.stage.Process(b)
		}); a != 0 {
			t.Errorf("Process with partial checksums: %v allocs per batch", a)
		}
	}
}
