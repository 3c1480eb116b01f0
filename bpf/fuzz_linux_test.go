package bpf

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

// classify is the Go reference of the program's decision for a queue
// without a socket: an independent oracle for the fuzz target.
func classify(f []byte, cfg Config) Verdict {
	if len(f) < 14+20+8 {
		return VerdictPass
	}
	if binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14]>>4 != 4 || f[23] != 17 {
		return VerdictPass
	}
	ours := slices.Contains(cfg.VTEPs, netip.AddrFrom4([4]byte(f[30:34])))
	if binary.BigEndian.Uint16(f[20:])&0x3fff != 0 { // MF or an offset
		if ours {
			return VerdictFragment
		}
		return VerdictPass
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	if ihl := int(f[14]&15) * 4; ihl != 20 {
		if ihl < 20 || len(f) < 14+ihl+8 || binary.BigEndian.Uint16(f[14+ihl+2:]) != port || !ours {
			return VerdictPass
		}
		return VerdictIPOptions
	}
	if binary.BigEndian.Uint16(f[36:]) != port || !ours {
		return VerdictPass
	}
	if cfg.FilterPeers && !slices.Contains(cfg.Peers, netip.AddrFrom4([4]byte(f[26:30]))) {
		return VerdictDropPeer
	}
	return VerdictNoSocket
}

// FuzzProgram runs the program on arbitrary frames and checks its action
// and counters against classify.
func FuzzProgram(f *testing.F) {
	requireRoot(f)
	cfg := Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true, Peers: []netip.Addr{peer}}
	p, err := Load(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	for _, o := range []frameOpts{
		{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789},
		{src: stranger, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789},
		{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789, frag: true},
		{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789, options: true},
		{src: stranger, dst: vtep, proto: layers.IPProtocolUDP, dport: 53, options: true},
		{src: peer, dst: vtep, proto: layers.IPProtocolICMPv4},
	} {
		f.Add(buildFrame(f, o))
	}
	f.Add(arpFrame(f))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1514 {
			return // Program.Run needs an Ethernet header; keep within a page
		}
		want := classify(frame, cfg)
		before, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		ret, err := p.XDP().Run(&ebpf.RunOptions{Data: frame})
		if err != nil {
			t.Fatal(err)
		}
		after, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		wantAction := uint32(xdpPass)
		if want == VerdictDropPeer {
			wantAction = xdpDrop
		}
		if ret != wantAction {
			t.Errorf("action %d, want %d (verdict %v) for %x", ret, wantAction, want, frame)
		}
		for v := Verdict(0); v < NumVerdicts; v++ {
			d := after.Packets[v] - before.Packets[v]
			if (v == want) != (d == 1) || d > 1 {
				t.Errorf("counter %v delta %d, want verdict %v", v, d, want)
			}
		}
	})
}
