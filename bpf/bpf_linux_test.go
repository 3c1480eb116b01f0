package bpf

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (CAP_BPF, CAP_NET_ADMIN): run as root")
	}
}

var (
	vtep     = netip.MustParseAddr("192.0.2.1")
	peer     = netip.MustParseAddr("192.0.2.2")
	stranger = netip.MustParseAddr("192.0.2.99")
	macA     = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB     = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

type frameOpts struct {
	src, dst netip.Addr
	proto    layers.IPProtocol
	dport    uint16
	options  bool
	frag     bool
	vlan     bool
}

// buildFrame serializes Ethernet/IPv4/(UDP+VxLAN or ICMP) with gopacket.
func buildFrame(tb testing.TB, o frameOpts) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: macB, DstMAC: macA, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: o.proto, SrcIP: o.src.AsSlice(), DstIP: o.dst.AsSlice()}
	if o.options {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	if o.frag {
		ip.Flags = layers.IPv4MoreFragments
	}
	var ls []gopacket.SerializableLayer
	if o.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, eth, &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip)
	} else {
		ls = append(ls, eth, ip)
	}
	switch o.proto {
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(o.dport)}
		udp.SetNetworkLayerForChecksum(ip)
		inner := make([]byte, 64)
		ls = append(ls, udp, &layers.VXLAN{ValidIDFlag: true, VNI: 42}, gopacket.Payload(inner))
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, gopacket.Payload(make([]byte, 32)))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize frame: %v", err)
	}
	return buf.Bytes()
}

func arpFrame(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: macB, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macB, SourceProtAddress: peer.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: vtep.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, arp); err != nil {
		tb.Fatalf("serialize arp: %v", err)
	}
	return buf.Bytes()
}

func TestProgramVerdicts(t *testing.T) {
	requireRoot(t)
	vx := frameOpts{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789}
	with := func(f func(*frameOpts)) frameOpts { o := vx; f(&o); return o }

	tests := []struct {
		name    string
		cfg     Config
		frame   func(testing.TB) []byte
		action  uint32
		verdict Verdict
	}{
		{"vxlan, no socket on queue", Config{VTEPs: []netip.Addr{vtep}}, fb(vx), xdpPass, VerdictNoSocket},
		{"vxlan on custom port", Config{VTEPs: []netip.Addr{vtep}, Port: 8472}, fb(with(func(o *frameOpts) { o.dport = 8472 })), xdpPass, VerdictNoSocket},
		{"default port when custom configured", Config{VTEPs: []netip.Addr{vtep}, Port: 8472}, fb(vx), xdpPass, VerdictPass},
		{"second vtep address", Config{VTEPs: []netip.Addr{netip.MustParseAddr("192.0.2.7"), vtep}}, fb(vx), xdpPass, VerdictNoSocket},
		{"other udp port", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.dport = 53 })), xdpPass, VerdictPass},
		{"other destination", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.dst = stranger })), xdpPass, VerdictPass},
		{"icmp", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.proto = layers.IPProtocolICMPv4 })), xdpPass, VerdictPass},
		{"ip options", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.options = true })), xdpPass, VerdictIPOptions},
		{"ip options, other port", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.options = true; o.dport = 53 })), xdpPass, VerdictPass},
		{"ip options, other destination", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.options = true; o.dst = stranger })), xdpPass, VerdictPass},
		{"ip options, stranger with filter", Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true}, fb(with(func(o *frameOpts) { o.options = true; o.src = stranger })), xdpPass, VerdictIPOptions},
		{"fragment", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.frag = true })), xdpPass, VerdictFragment},
		{"fragment, other port", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.frag = true; o.dport = 53 })), xdpPass, VerdictFragment},
		{"fragment, other destination", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.frag = true; o.dst = stranger })), xdpPass, VerdictPass},
		{"fragment with options", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.frag = true; o.options = true })), xdpPass, VerdictFragment},
		{"IHL below 5", Config{VTEPs: []netip.Addr{vtep}}, func(tb testing.TB) []byte { f := buildFrame(tb, vx); f[14] = 0x44; return f }, xdpPass, VerdictPass},
		{"vlan tagged", Config{VTEPs: []netip.Addr{vtep}}, fb(with(func(o *frameOpts) { o.vlan = true })), xdpPass, VerdictPass},
		{"arp", Config{VTEPs: []netip.Addr{vtep}}, arpFrame, xdpPass, VerdictPass},
		{"short frame", Config{VTEPs: []netip.Addr{vtep}}, func(tb testing.TB) []byte { return buildFrame(tb, vx)[:40] }, xdpPass, VerdictPass},
		{"filter: allowed peer", Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true, Peers: []netip.Addr{peer}}, fb(vx), xdpPass, VerdictNoSocket},
		{"filter: stranger dropped", Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true, Peers: []netip.Addr{peer}}, fb(with(func(o *frameOpts) { o.src = stranger })), xdpDrop, VerdictDropPeer},
		{"filter: empty peer list drops", Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true}, fb(vx), xdpDrop, VerdictDropPeer},
		{"filter off: stranger accepted", Config{VTEPs: []netip.Addr{vtep}, Peers: []netip.Addr{peer}}, fb(with(func(o *frameOpts) { o.src = stranger })), xdpPass, VerdictNoSocket},
	}
	p, err := Load(Config{VTEPs: []netip.Addr{vtep}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Configure(tt.cfg); err != nil {
				t.Fatal(err)
			}
			frame := tt.frame(t)
			before, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			ret, err := p.XDP().Run(&ebpf.RunOptions{Data: frame})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if ret != tt.action {
				t.Errorf("action = %d, want %d", ret, tt.action)
			}
			after, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			for v := Verdict(0); v < NumVerdicts; v++ {
				wantP, wantB := uint64(0), uint64(0)
				if v == tt.verdict {
					wantP, wantB = 1, uint64(len(frame))
				}
				if got := after.Packets[v] - before.Packets[v]; got != wantP {
					t.Errorf("counter %v packets delta = %d, want %d", v, got, wantP)
				}
				if got := after.Bytes[v] - before.Bytes[v]; got != wantB {
					t.Errorf("counter %v bytes delta = %d, want %d", v, got, wantB)
				}
			}
		})
	}
}

func fb(o frameOpts) func(testing.TB) []byte {
	return func(tb testing.TB) []byte { return buildFrame(tb, o) }
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{},
		{VTEPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		{VTEPs: []netip.Addr{vtep}, Peers: []netip.Addr{netip.MustParseAddr("2001:db8::2")}},
		{VTEPs: []netip.Addr{vtep}, Queues: -1},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want error", c)
		}
	}
	if err := (Config{VTEPs: []netip.Addr{vtep}}).validate(); err != nil {
		t.Errorf("validate(valid) = %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "native": ModeNative, "driver": ModeNative, "generic": ModeGeneric, "skb": ModeGeneric} {
		got, err := ParseMode(in)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in == want.String() {
			continue
		}
	}
	if _, err := ParseMode("hw"); err == nil {
		t.Error(`ParseMode("hw") = nil error`)
	}
}

// TestProgramAll: with Config.All every frame, VxLAN or not, goes to the
// socket of its queue; without one it is passed and counted as no_socket.
func TestProgramAll(t *testing.T) {
	requireRoot(t)
	p, err := Load(Config{All: true, Queues: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	frames := [][]byte{arpFrame(t), buildFrame(t, frameOpts{src: peer, dst: stranger, proto: layers.IPProtocolICMPv4}),
		buildFrame(t, frameOpts{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789}), make([]byte, 14)}
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var bytes uint64
	for _, f := range frames {
		ret, err := p.XDP().Run(&ebpf.RunOptions{Data: f})
		if err != nil || ret != xdpPass {
			t.Fatalf("run: %d, %v; want XDP_PASS (no socket)", ret, err)
		}
		bytes += uint64(len(f))
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(len(frames))
	if d := after.Packets[VerdictNoSocket] - before.Packets[VerdictNoSocket]; d != n {
		t.Errorf("no_socket counted %d of %d frames", d, n)
	}
	if d := after.Bytes[VerdictNoSocket] - before.Bytes[VerdictNoSocket]; d != bytes {
		t.Errorf("no_socket bytes %d, want %d", d, bytes)
	}
	if d := after.Packets[VerdictPass] - before.Packets[VerdictPass]; d != 0 {
		t.Errorf("pass counted %d", d)
	}
	if _, err := Load(Config{}); err == nil {
		t.Error("a program without VTEPs and without All loaded")
	}
}
