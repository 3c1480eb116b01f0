package xsk

// Test helpers: a namespace pair joined by a veth "wire", the XDP program on
// the host end, AF_PACKET senders and receivers, frame builders.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/bpf"
)

const (
	hostLink = "wire0" // in the host namespace: the program and the sockets
	peerLink = "wire1" // in the peer namespace: the traffic source
)

var (
	hostIP = netip.MustParseAddr("192.0.2.1")
	peerIP = netip.MustParseAddr("192.0.2.2")
)

type bed struct {
	host, peer       *testbed.NS
	hostIdx, peerIdx int
	hostMAC, peerMAC net.HardwareAddr
	prog             *bpf.Program
	att              *bpf.Attachment
}

type bedOpts struct {
	queues  int  // veth rx/tx queues (0: 1)
	noNeigh bool // leave ARP to the kernels
	noXDP   bool // do not load/attach the program
}

// newBed builds host and peer namespaces, the wire, addresses, and attaches
// the XDP program natively to the host end. Everything is removed when the
// test ends.
func newBed(t testing.TB, o bedOpts) *bed {
	t.Helper()
	testbedtest.RequirePrivileges(t)
	b := &bed{}
	var err error
	b.host = testbedtest.NewNS(t, "xskh")
	b.peer = testbedtest.NewNS(t, "xskp")
	q := max(o.queues, 1)
	if err := testbed.Veth(b.host, hostLink, b.peer, peerLink, testbed.VethOpts{RxQueues: q, TxQueues: q, NoOffloads: true}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.host.AddAddr(hostLink, "192.0.2.1/24"))
	must(b.peer.AddAddr(peerLink, "192.0.2.2/24"))
	b.hostIdx, err = b.host.LinkIndex(hostLink)
	must(err)
	b.peerIdx, err = b.peer.LinkIndex(peerLink)
	must(err)
	b.hostMAC, err = b.host.HWAddr(hostLink)
	must(err)
	b.peerMAC, err = b.peer.HWAddr(peerLink)
	must(err)
	if !o.noNeigh {
		must(b.peer.AddNeigh(peerLink, hostIP.AsSlice(), b.hostMAC))
		must(b.host.AddNeigh(hostLink, peerIP.AsSlice(), b.peerMAC))
	}
	if o.noXDP {
		return b
	}
	b.prog, err = bpf.Load(bpf.Config{VTEPs: []netip.Addr{hostIP}})
	must(err)
	t.Cleanup(func() { b.prog.Close() })
	must(b.host.Do(func() error {
		b.att, err = b.prog.Attach(b.hostIdx, bpf.ModeNative)
		return err
	}))
	t.Cleanup(func() { b.att.Close() })
	if b.att.Mode() != bpf.ModeNative {
		t.Fatalf("attach mode %v, want native", b.att.Mode())
	}
	return b
}

// open binds a socket to queue of the host end, registers it with the
// program, and checks the accounting invariant when the test ends.
func (b *bed) open(t testing.TB, queue int, o Options) *Socket {
	t.Helper()
	var s *Socket
	if err := b.host.Do(func() error {
		var err error
		s, err = Open(b.hostIdx, queue, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checkAccounting(t, s)
		s.Close()
	})
	if b.prog != nil {
		if err := b.prog.Register(queue, s.FD()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func checkAccounting(t testing.TB, s *Socket) {
	t.Helper()
	a := s.Accounting()
	if err := a.Check(); err != nil {
		t.Error(err)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	if a.Invalid != 0 {
		t.Errorf("accounting: %d invalid descriptors", a.Invalid)
	}
}

// vxFrame builds a VxLAN frame from the peer to the host of exactly size
// bytes (at least 96) with seq in the inner payload's first 8 bytes.
func (b *bed) vxFrame(t testing.TB, seq uint64, sport uint16, size int) []byte {
	t.Helper()
	const headers = 14 + 20 + 8 + 8 + 14 + 20 + 8 // outer + VxLAN + inner Ethernet/IPv4/UDP
	if size < headers+8 {
		t.Fatalf("frame size %d too small", size)
	}
	eth := &layers.Ethernet{SrcMAC: b.peerMAC, DstMAC: b.hostMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: peerIP.AsSlice(), DstIP: hostIP.AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 4789}
	udp.SetNetworkLayerForChecksum(ip)
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: 42}
	ieth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	iip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 42, 0, 1}, DstIP: net.IP{10, 42, 0, 2}}
	iudp := &layers.UDP{SrcPort: 5000, DstPort: 5001}
	iudp.SetNetworkLayerForChecksum(iip)
	payload := make([]byte, size-headers)
	binary.BigEndian.PutUint64(payload, seq)
	for i := 8; i < len(payload); i++ {
		payload[i] = byte(seq) + byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, vx, ieth, iip, iudp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// seqOf returns the sequence number written by vxFrame.
func seqOf(frame []byte) uint64 {
	const off = 14 + 20 + 8 + 8 + 14 + 20 + 8
	if len(frame) < off+8 {
		return ^uint64(0)
	}
	return binary.BigEndian.Uint64(frame[off:])
}

// rawSocket is an AF_PACKET socket bound to a link in a namespace: the
// fallback traffic source (and a sink for the transmit test).
type rawSocket struct {
	fd int
	sa unix.SockaddrLinklayer
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newRawSocket(t testing.TB, ns *testbed.NS, link string, proto uint16) *rawSocket {
	t.Helper()
	r := &rawSocket{fd: -1}
	if err := ns.Do(func() error {
		idx, err := ns.LinkIndex(link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return err
		}
		r.fd = fd
		r.sa = unix.SockaddrLinklayer{Ifindex: idx, Protocol: htons(unix.ETH_P_IP)}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			return err
		}
		if proto != 0 {
			return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: idx, Protocol: htons(proto)})
		}
		return nil
	}); err != nil {
		t.Fatalf("open packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r
}

func (r *rawSocket) send(t testing.TB, frame []byte) {
	t.Helper()
	if err := r.trySend(frame); err != nil {
		t.Fatal(err)
	}
}

// trySend sends one frame, retrying while the socket's buffer is full.
func (r *rawSocket) trySend(frame []byte) error {
	for {
		err := unix.Sendto(r.fd, frame, 0, &r.sa)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		return fmt.Errorf("send on packet socket: %w", err)
	}
}

// recvUntil reads frames for which keep returns true until n are read or
// the timeout passes.
func (r *rawSocket) recvUntil(t *testing.T, n int, timeout time.Duration, keep func([]byte) bool) [][]byte {
	t.Helper()
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for len(out) < n && time.Now().Before(deadline) {
		m, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			t.Fatalf("receive on packet socket: %v", err)
		}
		if keep(buf[:m]) {
			out = append(out, bytes.Clone(buf[:m]))
		}
	}
	return out
}

// collect receives from s until want frames arrived or timeout passed,
// releasing every frame, and returns copies.
func collect(t *testing.T, s *Socket, want int, timeout time.Duration) [][]byte {
	t.Helper()
	descs := make([]Desc, 64)
	var out [][]byte
	deadline := time.Now().Add(timeout)
	for len(out) < want && time.Now().Before(deadline) {
		if _, err := s.Poll(20 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n := s.Receive(descs)
		for _, d := range descs[:n] {
			out = append(out, bytes.Clone(s.Frame(d)))
		}
		s.Release(descs[:n])
	}
	return out
}

// loadDrop attaches an XDP_DROP program to the peer end natively.
func loadDrop(b *bed) (link.Link, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xsk_test_drop", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	var l link.Link
	err = b.peer.Do(func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.peerIdx, Flags: link.XDPDriverMode})
		return err
	})
	return l, err
}
