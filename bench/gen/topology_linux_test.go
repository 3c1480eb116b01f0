package gen

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

// kernelPath builds the kernel-VxLAN testbed with an XDP_PASS program on
// the host's uplink (so that it accepts XDP frames) and a VxLAN frame from
// peer to the container's UDP port.
func kernelPath(t testing.TB, size int, port int) (*testbed.Topology, Frame, *net.UDPConn) {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	topo, err := testbed.Build(context.Background(), testbed.Options{Prefix: "gent", HostVxLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	pass, err := AttachPass(topo.Host, testbed.HostUplink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	ctrMAC, err := topo.Ctr.HWAddr(testbed.CtrDev)
	if err != nil {
		t.Fatal(err)
	}
	peerMAC, err := topo.Peer.HWAddr(testbed.VxLANDev)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(ip net.IP) netip.Addr { a, _ := netip.AddrFromSlice(ip.To4()); return a }
	f, err := BuildFrame(FrameSpec{
		SrcMAC: topo.PeerWireMAC, DstMAC: topo.HostUplinkMAC,
		SrcIP: addr(testbed.PeerUnderlayIP), DstIP: addr(testbed.HostUnderlayIP),
		SrcPort: 49152, VNI: testbed.VNI,
		Inner: &FrameSpec{
			SrcMAC: peerMAC, DstMAC: ctrMAC,
			SrcIP: addr(testbed.PeerOverlayIP), DstIP: addr(testbed.CtrOverlayIP),
			SrcPort: 5000, DstPort: uint16(port),
		},
		Size: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	var c *net.UDPConn
	if err := topo.Ctr.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: testbed.CtrOverlayIP, Port: port})
		if err == nil {
			err = c.SetReadBuffer(32 << 20)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return topo, f, c
}

// TestKernelVxLANPath sends generated VxLAN frames from the peer's wire
// through the host's kernel VxLAN and bridge to a UDP socket in the
// container, and checks that they arrive in order.
func TestKernelVxLANPath(t *testing.T) {
	topo, f, c := kernelPath(t, 128, 7100)
	const n = 500
	st, err := Run(context.Background(), topo.Peer, testbed.PeerWire, f.Data, Options{Count: n, SeqOffset: f.SeqOffset, TimeOffset: f.TimeOffset, Chunk: 100})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != n {
		t.Fatalf("sent %d, want %d", st.Sent, n)
	}
	buf := make([]byte, 2048)
	for want := uint64(0); want < n; want++ {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", want, err)
		}
		if m != f.PayloadLen {
			t.Fatalf("datagram of %d bytes, want %d", m, f.PayloadLen)
		}
		if seq, _ := Seq(buf[:m], 0); seq != want {
			t.Fatalf("datagram %d has sequence number %d", want, seq)
		}
		// One-way latency from the generator's stamp: positive and sane.
		sent, _ := SentAt(buf[:m], f.TimeOffset-f.SeqOffset)
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		if lat := now.Nano() - sent; lat <= 0 || lat > int64(10*time.Second) {
			t.Fatalf("datagram %d: latency %d ns", want, lat)
		}
	}
}

// BenchmarkKernelVxLAN reports what the kernel's VxLAN path (host uplink
// with XDP_PASS, vxlan42, br42, veth, UDP socket in ctr) delivers while the
// generator in peer offers 128-byte frames as fast as it can: offered-Mpps
// (the generator's rate, which includes the host's NAPI work on the same
// CPU), delivered-Mpps (datagrams read per second of generator time) and
// loss (1 - read/sent).
func BenchmarkKernelVxLAN(b *testing.B) {
	topo, f, c := kernelPath(b, 128, 7101)
	done := make(chan uint64)
	go func() {
		buf := make([]byte, 2048)
		var got uint64
		for {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				done <- got
				return
			}
			got++
		}
	}()
	b.ResetTimer()
	st, err := Run(context.Background(), topo.Peer, testbed.PeerWire, f.Data, Options{Count: uint64(b.N), SeqOffset: f.SeqOffset})
	if err != nil {
		b.Fatal(err)
	}
	got := <-done
	b.ReportMetric(st.Mpps(), "offered-Mpps")
	b.ReportMetric(float64(got)/st.Duration.Seconds()/1e6, "delivered-Mpps")
	b.ReportMetric(1-float64(got)/float64(st.Sent), "loss")
}
