package tap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/internal/sysfs"
)

// newNS makes a namespace for one test (never the root namespace) and
// removes it, with every link in it, when the test ends.
func newNS(t *testing.T) *testbed.NS {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
	return testbedtest.NewNS(t, "tap")
}

func do(t *testing.T, ns *testbed.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// openTAP opens a TAP in ns and closes it at the end of the test.
func openTAP(t *testing.T, ns *testbed.NS, o Options) *Device {
	t.Helper()
	var d *Device
	do(t, ns, func() (err error) { d, err = Open(o); return err })
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenCreateAdopt(t *testing.T) {
	ns := newNS(t)
	do(t, ns, func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br42"}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		return netlink.LinkSetUp(br)
	})

	d := openTAP(t, ns, Options{Name: "mflow42", MTU: 1400, QueueLen: 4096, Bridge: "br42"})
	if d.Adopted() {
		t.Errorf("Adopted() = true for a new device")
	}
	t.Logf("offloads: %s", d.Offloads())
	if want := OffloadCsum | OffloadTSO4 | OffloadTSO6; d.Offloads()&want != want {
		t.Errorf("Offloads() = %s, want at least %s", d.Offloads(), want)
	}
	do(t, ns, func() error {
		l, err := netlink.LinkByName("mflow42")
		if err != nil {
			return err
		}
		br, err := netlink.LinkByName("br42")
		if err != nil {
			return err
		}
		a := l.Attrs()
		if tt, ok := l.(*netlink.Tuntap); !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
			t.Errorf("mflow42 is a %s, want a TAP", l.Type())
		}
		if a.TxQLen != 4096 {
			t.Errorf("mflow42: txqueuelen %d, want 4096", a.TxQLen)
		}
		if a.MTU != 1400 || a.MasterIndex != br.Attrs().Index || a.Flags&net.FlagUp == 0 || a.Index != d.Index() {
			t.Errorf("mflow42: mtu %d master %d up %v index %d; want 1400, %d, true, %d",
				a.MTU, a.MasterIndex, a.Flags&net.FlagUp != 0, a.Index, br.Attrs().Index, d.Index())
		}
		return nil
	})

	// Errors: a name that is not a TAP, an existing TAP with MustCreate, a
	// missing bridge, a non-bridge master.
	do(t, ns, func() error {
		if _, err := Open(Options{Name: "br42"}); !errors.Is(err, ErrNotTAP) {
			t.Errorf("Open(br42) = %v, want ErrNotTAP", err)
		}
		if _, err := Open(Options{Name: "mflow42", MustCreate: true}); !errors.Is(err, ErrExists) {
			t.Errorf("Open(mflow42, MustCreate) = %v, want ErrExists", err)
		}
		if _, err := Open(Options{Name: "mflow43", Bridge: "nobr"}); err == nil {
			t.Errorf("Open with a missing bridge succeeded")
		}
		if _, err := Open(Options{Name: "mflow44", Bridge: "lo"}); err == nil {
			t.Errorf("Open with lo as bridge succeeded")
		}
		// A failed Open leaves no device behind.
		for _, n := range []string{"mflow43", "mflow44"} {
			if _, err := netlink.LinkByName(n); err == nil {
				t.Errorf("%s exists after a failed Open", n)
			}
		}
		return nil
	})

	// A created device goes away on Close.
	d.Close()
	do(t, ns, func() error {
		if _, err := netlink.LinkByName("mflow42"); err == nil {
			t.Errorf("mflow42 still exists after Close")
		}
		return nil
	})

	// Adopt a persistent TAP (as `ip tuntap add` makes); it stays after Close.
	do(t, ns, func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "ptap0"}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR})
	})
	p := openTAP(t, ns, Options{Name: "ptap0", MTU: 1450, Bridge: "br42"})
	if !p.Adopted() {
		t.Errorf("Adopted() = false for an existing TAP")
	}
	p.Close()
	do(t, ns, func() error {
		l, err := netlink.LinkByName("ptap0")
		if err != nil {
			t.Errorf("adopted ptap0 is gone after Close: %v", err)
			return nil
		}
		if l.Attrs().MTU != 1450 {
			t.Errorf("ptap0 MTU = %d, want 1450", l.Attrs().MTU)
		}
		return nil
	})
}

// hostTAP opens a TAP with address 10.42.0.1/24 whose "wire side" is the
// test: 10.42.0.2 is a permanent neighbour with MAC macB.
func hostTAP(t *testing.T, ns *testbed.NS, mtu int) *Device {
	t.Helper()
	d := openTAP(t, ns, Options{Name: "tap0", MTU: mtu})
	do(t, ns, func() error {
		// No IPv6 chatter (router solicitations, MLD) on the TAP.
		os.WriteFile("/proc/sys/net/ipv6/conf/tap0/disable_ipv6", []byte("1"), 0)
		return nil
	})
	if err := ns.AddAddr("tap0", "10.42.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := ns.AddNeigh("tap0", ip4B, macB); err != nil {
		t.Fatal(err)
	}
	return d
}

// readUntil reads frames until keep has accepted want of them, or fails
// after a timeout.
func readUntil(t *testing.T, d *Device, want int, keep func(frame []byte) bool) [][]byte {
	t.Helper()
	bufs, sizes := newBufs(64, 2048)
	var got [][]byte
	done := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() {
		select {
		case <-done:
		default:
			t.Errorf("timed out after %d of %d frames", len(got), want)
			d.Close()
		}
	})
	defer timer.Stop()
	defer close(done)
	for len(got) < want {
		n, err := d.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for i := 0; i < n; i++ {
			f := append([]byte(nil), bufs[i][:sizes[i]]...)
			if keep(f) {
				got = append(got, f)
			}
		}
	}
	return got
}

// isUDPTo reports whether frame is an IPv4 UDP datagram to port.
func isUDPTo(port uint16) func([]byte) bool {
	return func(f []byte) bool {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		return ok && uint16(u.DstPort) == port
	}
}

// checkOracle re-serializes frame with gopacket (computing checksums and
// lengths) and fails if anything differs.
func checkOracle(t *testing.T, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode frame: %v", el.Error())
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	var ls []gopacket.SerializableLayer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip)
			ls = append(ls, l)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip)
			ls = append(ls, l)
		case gopacket.SerializableLayer:
			ls = append(ls, l)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("re-serializing: %v", err)
	}
	want := buf.Bytes()
	if len(frame) < 60 && len(want) == 60 { // gopacket pads to the Ethernet minimum; the kernel does not
		want = want[:len(frame)]
	}
	if !bytes.Equal(want, frame) {
		t.Errorf("frame differs from gopacket's re-serialization:\ngot  %s\nwant %s", describe(frame), describe(want))
	}
	return p
}

// udpSocket opens a UDP socket in ns connected to 10.42.0.2:port.
func udpSocket(t *testing.T, ns *testbed.NS, port int) int {
	t.Helper()
	var fd int
	do(t, ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte(ip4B.To4()), Port: port})
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestReadUDP sends datagrams from the host stack through the TAP: a plain
// one (partial checksum, filled in by Read) and a UDP GSO one (a USO
// super-frame when the kernel offers USO, cut by Read).
func TestReadUDP(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1400)
	fd := udpSocket(t, ns, 5201)

	msg := payload(300)
	if _, err := unix.Write(fd, msg); err != nil {
		t.Fatal(err)
	}
	f := readUntil(t, d, 1, isUDPTo(5201))[0]
	p := checkOracle(t, f)
	if got := p.ApplicationLayer().Payload(); !bytes.Equal(got, msg) {
		t.Errorf("payload differs: got %d bytes, want %d", len(got), len(msg))
	}

	// UDP GSO: 4500 bytes in segments of 1000.
	if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT, 1000); err != nil {
		t.Skipf("UDP_SEGMENT: %v", err)
	}
	big := payload(4500)
	before := d.Stats()
	if _, err := unix.Write(fd, big); err != nil {
		t.Fatal(err)
	}
	frames := readUntil(t, d, 5, isUDPTo(5201))
	var cat []byte
	for i, f := range frames {
		p := checkOracle(t, f)
		pl := p.ApplicationLayer().Payload()
		if want := min(1000, 4500-i*1000); len(pl) != want {
			t.Errorf("segment %d: %d payload bytes, want %d", i, len(pl), want)
		}
		cat = append(cat, pl...)
	}
	if !bytes.Equal(cat, big) {
		t.Errorf("segments do not carry the datagrams' payload in order")
	}
	after := d.Stats()
	t.Logf("offloads %s; stats %+v", d.Offloads(), after)
	if d.Offloads()&OffloadUSO4 != 0 && after.SuperFrames == before.SuperFrames {
		t.Errorf("USO is on but no super-frame was read")
	}
	if after.Frames-before.Frames < 5 || after.ReadPackets <= before.ReadPackets {
		t.Errorf("stats did not count the frames: before %+v after %+v", before, after)
	}
}

// TestReadAllocs checks that Read on a real TAP does not allocate.
func TestReadAllocs(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1500)
	fd := udpSocket(t, ns, 5202)
	bufs, sizes := newBufs(64, 2048)
	msg := payload(1000)
	// Warm up (the first read may meet IPv4 multicast or ARP chatter).
	for i := 0; i < 3; i++ {
		unix.Write(fd, msg)
		if _, err := d.Read(bufs, sizes, 64); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := unix.Write(fd, msg); err != nil {
			t.Fatal(err)
		}
		if n, err := d.Read(bufs, sizes, 64); err != nil || n < 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("send+Read allocates %v times, want 0", allocs)
	}
}

// TestTCPThroughTAP runs a real kernel TCP connection out of the TAP, with
// the test playing the remote end by writing SYN-ACK and ACKs with Write:
// the kernel hands TSO super-frames to the TAP, Read must cut them into
// MTU-sized segments that carry the byte stream in order with valid
// headers and checksums.
func TestTCPThroughTAP(t *testing.T) {
	for _, nbufs := range []int{64, 3} {
		t.Run(fmt.Sprintf("%d buffers", nbufs), func(t *testing.T) { tcpThroughTAP(t, nbufs) })
	}
}

func tcpThroughTAP(t *testing.T, nbufs int) {
	ns := newNS(t)
	const mtu, mss = 1400, 1360
	d := hostTAP(t, ns, mtu)
	srcMAC, err := ns.HWAddr("tap0")
	if err != nil {
		t.Fatal(err)
	}
	data := payload(200_000)

	// The client: connect and write all data, in the namespace.
	connErr := make(chan error, 1)
	go func() {
		connErr <- ns.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", "10.42.0.2:5201")
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			_, err = c.Write(data)
			if err == nil {
				c.(*net.TCPConn).CloseWrite()
				// Wait for the test to acknowledge the FIN (then the read
				// sees EOF or an error): keeps the socket until the end.
				io.Copy(io.Discard, c)
			}
			return err
		})
	}()

	// The remote end.
	const iss = 1_000_000
	var (
		clientISN  uint32
		next       uint32 // next byte expected from the client
		got        []byte
		finSeen    bool
		maxFrame   int
		clientPort layers.TCPPort
	)
	wbuf := make([]byte, 256)
	reply := func(syn, fin bool, seq, ack uint32) {
		eth := &layers.Ethernet{SrcMAC: macB, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4B, DstIP: ip4A}
		tcp := &layers.TCP{SrcPort: 5201, DstPort: 0, Seq: seq, Ack: ack, ACK: true, SYN: syn, FIN: fin, Window: 65535}
		tcp.DstPort = clientPort
		if syn {
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{mss >> 8, mss & 0xff}},
				{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
		}
		tcp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		n := copy(wbuf[VirtioNetHdrLen:], sb.Bytes())
		if _, err := d.Write([][]byte{wbuf[:VirtioNetHdrLen+n]}, VirtioNetHdrLen); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	bufs, sizes := newBufs(nbufs, 2048)
	deadline := time.AfterFunc(20*time.Second, func() { t.Errorf("timed out with %d of %d bytes", len(got), len(data)); d.Close() })
	defer deadline.Stop()
	for !finSeen {
		n, err := d.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for i := 0; i < n; i++ {
			f := bufs[i][:sizes[i]]
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok || tcp.DstPort != 5201 {
				continue
			}
			checkOracle(t, f)
			maxFrame = max(maxFrame, len(f))
			switch {
			case tcp.SYN:
				clientPort, clientISN = tcp.SrcPort, tcp.Seq
				next = clientISN + 1
				reply(true, false, iss, next)
			default:
				if pl := tcp.Payload; len(pl) > 0 {
					if tcp.Seq != next {
						t.Fatalf("segment at seq %d, want %d (lost or reordered)", tcp.Seq-clientISN, next-clientISN)
					}
					got = append(got, pl...)
					next += uint32(len(pl))
					if len(pl) > mss {
						t.Errorf("segment of %d payload bytes, MSS %d", len(pl), mss)
					}
				}
				if tcp.FIN {
					finSeen = true
					next++
					reply(false, true, iss+1, next)
				} else if len(tcp.Payload) > 0 {
					reply(false, false, iss+1, next)
				}
			}
		}
	}
	if err := <-connErr; err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("received %d bytes, not the %d sent in order", len(got), len(data))
	}
	st := d.Stats()
	t.Logf("stats: %+v; largest frame %d", st, maxFrame)
	if maxFrame > mtu+14 {
		t.Errorf("frame of %d bytes exceeds MTU %d + 14", maxFrame, mtu)
	}
	if st.SuperFrames == 0 {
		t.Errorf("no TSO super-frame was read; the segmentation path was not exercised")
	}
	if st.WritePackets == 0 {
		t.Errorf("Write counted no packets")
	}
}

// TestWriteCoalescedTCP plays a remote TCP client towards a server socket
// behind the TAP: the data segments go through WriteCoalesced, so the
// kernel receives GSO super-frames; the server must read the exact byte
// stream, and the counters must show fewer writes than frames.
func TestWriteCoalescedTCP(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1500)
	tapMAC, err := ns.HWAddr("tap0")
	if err != nil {
		t.Fatal(err)
	}
	const segSize, total = 1400, 2_000_000
	data := payload(total)

	var ln net.Listener
	do(t, ns, func() (err error) { ln, err = net.Listen("tcp4", "10.42.0.1:5201"); return err })
	t.Cleanup(func() { ln.Close() })
	received := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, total))
		received <- b
	}()

	const cport, iss = 40000, 5000
	frame := func(seq, ack uint32, syn, psh bool, pl []byte) []byte {
		eth := &layers.Ethernet{SrcMAC: macB, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: ip4B, DstIP: ip4A}
		tcp := &layers.TCP{SrcPort: cport, DstPort: 5201, Seq: seq, Ack: ack, ACK: !syn, SYN: syn, PSH: psh, Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(pl)); err != nil {
			t.Fatal(err)
		}
		return append(make([]byte, coOffset), sb.Bytes()...)
	}
	// serverAck reads frames from the TAP until a TCP segment from the
	// server arrives, and returns its ack (and seq for the SYN-ACK).
	rbufs, rsizes := newBufs(64, 2048)
	serverAck := func() (seq, ack uint32, window int) {
		for {
			n, err := d.Read(rbufs, rsizes, 0)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			for i := n - 1; i >= 0; i-- {
				p := gopacket.NewPacket(rbufs[i][:rsizes[i]], layers.LayerTypeEthernet, gopacket.Default)
				if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tcp.DstPort == cport {
					if tcp.RST {
						t.Fatalf("server reset the connection")
					}
					return tcp.Seq, tcp.Ack, int(tcp.Window)
				}
			}
		}
	}
	deadline := time.AfterFunc(30*time.Second, func() { t.Errorf("timed out"); d.Close() })
	defer deadline.Stop()

	if _, err := d.Write([][]byte{frame(iss, 0, true, false, nil)}, coOffset); err != nil {
		t.Fatal(err)
	}
	sseq, _, _ := serverAck()
	rcvNext := sseq + 1
	if _, err := d.Write([][]byte{frame(iss+1, rcvNext, false, false, nil)}, coOffset); err != nil {
		t.Fatal(err)
	}

	next, acked, window := 0, 0, 65535
	var batch [][]byte
	for acked < total {
		// Send what the window allows, in batches of up to 40 segments.
		batch = batch[:0]
		for next < total && next+segSize-acked <= window && len(batch) < 40 {
			n := min(segSize, total-next)
			batch = append(batch, frame(iss+1+uint32(next), rcvNext, false, next+n == total, data[next:next+n]))
			next += n
		}
		if len(batch) > 0 {
			if n, err := d.WriteCoalesced(batch, coOffset); err != nil || n != len(batch) {
				t.Fatalf("WriteCoalesced = %d, %v; want %d", n, err, len(batch))
			}
		}
		_, ack, win := serverAck()
		if a := int(ack - (iss + 1)); a > acked {
			acked = a
		}
		window = win
	}
	got := <-received
	if !bytes.Equal(got, data) {
		t.Errorf("server read %d bytes, not the %d sent in order", len(got), len(data))
	}
	st := d.Stats()
	t.Logf("stats: packets %d, syscalls %d, super-frames %d, errors %d", st.WritePackets, st.WriteSyscalls, st.WriteSuperFrames, st.WriteErrors)
	if st.WriteSuperFrames == 0 || st.WriteSyscalls*2 > st.WritePackets {
		t.Errorf("coalescing saved too little: %d writes for %d frames (%d super-frames)", st.WriteSyscalls, st.WritePackets, st.WriteSuperFrames)
	}
	if st.WriteErrors != 0 {
		t.Errorf("%d frames refused", st.WriteErrors)
	}
}

// TestWriteAllocs checks that Write and WriteCoalesced do not allocate
// once warm. The frames are addressed to another MAC, so the host drops
// them quietly.
func TestWriteAllocs(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1500)
	bufs := flowSegs(t, repeat(32, 1400), 1, 40000)
	for _, tc := range []struct {
		name  string
		write func() (int, error)
	}{
		{"Write", func() (int, error) { return d.Write(bufs, coOffset) }},
		{"WriteCoalesced", func() (int, error) { return d.WriteCoalesced(bufs, coOffset) }},
	} {
		if _, err := tc.write(); err != nil { // warm up
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if n, err := tc.write(); err != nil || n != len(bufs) {
				t.Fatalf("%s = %d, %v", tc.name, n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s allocates %v times per batch, want 0", tc.name, allocs)
		}
	}
	st := d.Stats()
	if st.WriteErrors != 0 || st.WritePackets != 2*52*32 { // warm-up + AllocsPerRun's 51 calls, per case
		t.Errorf("stats %+v, want %d packets and no errors", st, 2*52*32)
	}
}

// TestWriteCoalescedUDP writes runs of datagrams of one UDP flow through
// WriteCoalesced and checks that a socket behind the TAP receives every
// datagram, with its own boundaries, content and order, while the writes
// were fewer than the datagrams (UDP_L4 super-frames).
func TestWriteCoalescedUDP(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1500)
	tapMAC, err := ns.HWAddr("tap0")
	if err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	do(t, ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip4A, Port: 5300})
		return err
	})
	t.Cleanup(func() { conn.Close() })
	conn.SetReadBuffer(4 << 20)

	datagram := func(seq int, size int, withCsum bool) []byte {
		pl := payload(size)
		binary.BigEndian.PutUint32(pl, uint32(seq))
		eth := &layers.Ethernet{SrcMAC: macB, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: uint16(seq * 3), Protocol: layers.IPProtocolUDP, SrcIP: ip4B, DstIP: ip4A}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 5300}
		udp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(pl)); err != nil {
			t.Fatal(err)
		}
		f := sb.Bytes()
		if !withCsum {
			f[14+20+6], f[14+20+7] = 0, 0 // "no checksum", as VTEPs often send
		}
		return append(make([]byte, coOffset), f...)
	}
	// 5 batches of 40: 39 full datagrams and a shorter one each, half
	// of them without a UDP checksum.
	var sizes []int
	for b := 0; b < 5; b++ {
		var batch [][]byte
		for k := 0; k < 40; k++ {
			size := 1000
			if k == 39 {
				size = 300
			}
			sizes = append(sizes, size)
			batch = append(batch, datagram(len(sizes)-1, size, b%2 == 0))
		}
		if n, err := d.WriteCoalesced(batch, coOffset); err != nil || n != len(batch) {
			t.Fatalf("WriteCoalesced = %d, %v; want %d", n, err, len(batch))
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	for i, size := range sizes {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		want := payload(size)
		binary.BigEndian.PutUint32(want, uint32(i))
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: got %d bytes (seq %d), want %d bytes with seq %d", i, n, binary.BigEndian.Uint32(buf), size, i)
		}
	}
	st := d.Stats()
	t.Logf("stats: packets %d, syscalls %d, super-frames %d, errors %d", st.WritePackets, st.WriteSyscalls, st.WriteSuperFrames, st.WriteErrors)
	if st.WriteSuperFrames != 5 || st.WriteSyscalls != 5 || st.WritePackets != uint64(len(sizes)) {
		t.Errorf("want 5 super-frames in 5 writes for %d datagrams", len(sizes))
	}
}

// TestReadSpin: with SetReadSpin, a datagram that comes while Read spins
// and one that comes after the spin gave up (Read then waits in the
// poller) are both read, and Read with spinning on allocates nothing (a
// Read that finds its packet at once; the spin loop itself only calls
// time.Now and sched_yield).
func TestReadSpin(t *testing.T) {
	ns := newNS(t)
	d := hostTAP(t, ns, 1500)
	fd := udpSocket(t, ns, 5203)
	d.SetReadSpin(20 * time.Millisecond)
	msg := payload(200)
	for _, delay := range []time.Duration{time.Millisecond, 60 * time.Millisecond} {
		go func() {
			time.Sleep(delay)
			unix.Write(fd, msg)
		}()
		f := readUntil(t, d, 1, isUDPTo(5203))[0]
		if got := checkOracle(t, f).ApplicationLayer().Payload(); !bytes.Equal(got, msg) {
			t.Errorf("sent after %v: payload differs", delay)
		}
	}
	bufs, sizes := newBufs(64, 2048)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := unix.Write(fd, msg); err != nil {
			t.Fatal(err)
		}
		if n, err := d.Read(bufs, sizes, 64); err != nil || n < 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("send+Read with spinning allocates %v times, want 0", allocs)
	}
}

// TestRPS: SetRPS writes every receive queue's rps_cpus of a multi-queue
// TAP (read back through the testbed's own sysfs mount), RPS reads the
// same, and an adopted TAP gets its old masks back on Close.
func TestRPS(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	ns := newNS(t)
	d := openTAP(t, ns, Options{Name: "mq0", MultiQueue: true})
	openTAP(t, ns, Options{Name: "mq0", MultiQueue: true})
	if err := d.SetRPS("2"); err != nil {
		t.Fatal(err)
	}
	got, err := d.RPS()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("RPS() = %q, want two queues", got)
	}
	for q := range 2 {
		m, err := ns.RPS("mq0", q)
		if err != nil {
			t.Fatal(err)
		}
		if hexMask(t, m) != 2 || hexMask(t, got[q]) != 2 {
			t.Errorf("rx-%d: sysfs %q, RPS() %q; want CPU 1", q, m, got[q])
		}
	}
	if err := d.SetRPS("not a mask"); err == nil {
		t.Errorf("SetRPS(not a mask) succeeded")
	}

	// An adopted TAP: rps_cpus 1 before, 3 while open, 1 again after Close.
	do(t, ns, func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "ptap1"}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR})
	})
	if err := ns.SetRPS("ptap1", 0, "1"); err != nil {
		t.Fatal(err)
	}
	p := openTAP(t, ns, Options{Name: "ptap1"})
	if err := p.SetRPS("3"); err != nil {
		t.Fatal(err)
	}
	if m, err := ns.RPS("ptap1", 0); err != nil || hexMask(t, m) != 3 {
		t.Fatalf("adopted TAP while open: %q, %v; want CPUs 0-1", m, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := ns.RPS("ptap1", 0); err != nil || hexMask(t, m) != 1 {
		t.Fatalf("adopted TAP after Close: %q, %v; want its old mask, CPU 0", m, err)
	}

	// An adopted multi-queue TAP: the second queue (rx-1) exists only
	// while mflow holds it; rx-0 gets its mask back, and closing the
	// queues in the daemon's order (the extra one first) is not an error.
	do(t, ns, func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "pmq1"}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_MULTI_QUEUE})
	})
	if err := ns.SetRPS("pmq1", 0, "1"); err != nil {
		t.Fatal(err)
	}
	m0 := openTAP(t, ns, Options{Name: "pmq1", MultiQueue: true})
	m1 := openTAP(t, ns, Options{Name: "pmq1", MultiQueue: true})
	if err := m0.SetRPS("3"); err != nil {
		t.Fatal(err)
	}
	if got, err := m0.RPS(); err != nil || len(got) != 2 || hexMask(t, got[1]) != 3 {
		t.Fatalf("adopted multi-queue TAP while open: %q, %v; want two queues on CPUs 0-1", got, err)
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m0.Close(); err != nil {
		t.Fatalf("closing the adopted multi-queue TAP: %v", err)
	}
	if m, err := ns.RPS("pmq1", 0); err != nil || hexMask(t, m) != 1 {
		t.Fatalf("adopted multi-queue TAP after Close: %q, %v; want its old mask, CPU 0", m, err)
	}
}

// hexMask parses a CPU mask as the kernel prints it.
func hexMask(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.ReplaceAll(s, ",", ""), 16, 64)
	if err != nil {
		t.Fatalf("mask %q: %v", s, err)
	}
	return v
}

// TestSysfsShows: a sysfs is taken to show a device only with its name,
// index and (where asked) MAC address; the host's /sys does not show a
// TAP of a test namespace, and the control reads the MAC address the
// device has now.
func TestSysfsShows(t *testing.T) {
	ns := newNS(t)
	d := openTAP(t, ns, Options{Name: "shw0"})
	mac, err := d.rps.mac()
	if err != nil {
		t.Fatal(err)
	}
	if sysfsShows("/sys", "shw0", d.Index(), mac) {
		t.Fatalf("the host's /sys is taken to show shw0 of namespace %s", ns.Name)
	}
	check := func(what string, mac net.HardwareAddr, want bool) {
		t.Helper()
		err := sysfs.InNetns(d.rps.nsFD, func(root string) error {
			if got := sysfsShows(root, "shw0", d.Index(), mac); got != want {
				t.Errorf("%s: sysfsShows(%v) = %v, want %v", what, mac, got, want)
			}
			if sysfsShows(root, "shw0", d.Index()+1, nil) {
				t.Errorf("%s: another index is taken to be shw0", what)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("as opened", mac, true)
	check("any MAC", nil, true)
	other := net.HardwareAddr{2, 0, 0, 0, 0x42, 1}
	check("another MAC", other, false)
	do(t, ns, func() error {
		l, err := netlink.LinkByName("shw0")
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(l, other)
	})
	now, err := d.rps.mac()
	if err != nil || now.String() != other.String() {
		t.Fatalf("mac() after the change = %v, %v; want %v", now, err, other)
	}
	check("after the change, the new MAC", other, true)
}

// TestTxKernelDrops: packets written into a transmit TAP that nothing in
// the kernel takes (an EtherType without a handler, no ingress program)
// are counted by KernelDrops, and the count outlives Close.
func TestTxKernelDrops(t *testing.T) {
	ns := newNS(t)
	var tx *Tx
	do(t, ns, func() (err error) { tx, err = OpenTx("mfxdrop", 1); return err })
	defer tx.Close()
	pkt := make([]byte, TunnelHdrLen+60) // a zero header: a plain frame
	copy(pkt[TunnelHdrLen:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	const n = 10
	for range n {
		if err := tx.Write(0, pkt); err != nil {
			t.Fatal(err)
		}
	}
	if got := tx.KernelDrops(); got != n {
		t.Fatalf("KernelDrops() = %d after %d unhandled packets", got, n)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tx.KernelDrops(); got != n {
		t.Fatalf("KernelDrops() after Close = %d, want %d", got, n)
	}
}

// TestTxKernelDropsWithoutSysAdmin reads the transmit TAP's drop counter
// from a thread in the TAP's namespace that lacks CAP_SYS_ADMIN, as a
// daemon run with the systemd unit's capabilities does: it must not need
// to enter the namespace (setns), which that daemon may not.
func TestTxKernelDropsWithoutSysAdmin(t *testing.T) {
	ns := newNS(t)
	var tx *Tx
	do(t, ns, func() (err error) { tx, err = OpenTx("mfxcap", 1); return err })
	defer tx.Close()
	pkt := make([]byte, TunnelHdrLen+60) // a zero header: a plain frame
	copy(pkt[TunnelHdrLen:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	const n = 7
	for range n {
		if err := tx.Write(0, pkt); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		drops uint64
		err   error
	}
	res := make(chan result, 1)
	go func() {
		// This thread is changed for good: it stays locked, so that it
		// ends with the goroutine.
		runtime.LockOSThread()
		if err := netns.Set(ns.Handle()); err != nil {
			res <- result{err: err}
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			res <- result{err: err}
			return
		}
		data[unix.CAP_SYS_ADMIN/32].Effective &^= 1 << (unix.CAP_SYS_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			res <- result{err: err}
			return
		}
		res <- result{drops: tx.KernelDrops()}
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.drops != n {
		t.Fatalf("KernelDrops() without CAP_SYS_ADMIN = %d after %d unhandled packets", r.drops, n)
	}
}
