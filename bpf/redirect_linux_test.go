package bpf

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/xsk"
)

// TestProgramRedirect covers the redirect verdict through Program.Run: it
// needs a bound AF_XDP socket in the XSKMAP, here on the loopback device of
// a fresh namespace (no traffic flows; the program only looks the socket
// up).
func TestProgramRedirect(t *testing.T) {
	ns := testbedtest.NewNS(t, "bpfx")
	var s *xsk.Socket
	if err := ns.Do(func() error {
		idx, err := ns.LinkIndex("lo")
		if err != nil {
			return err
		}
		s, err = xsk.Open(idx, 0, xsk.Options{NumFrames: 64, FillSize: 32, RxSize: 32, TxSize: 32, CompletionSize: 32})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, err := Load(Config{VTEPs: []netip.Addr{vtep}, FilterPeers: true, Peers: []netip.Addr{peer}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Register(0, s.FD()); err != nil {
		t.Fatal(err)
	}
	vx := buildFrame(t, frameOpts{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789})
	for _, tc := range []struct {
		name    string
		frame   []byte
		action  uint32
		verdict Verdict
	}{
		{"vxlan from peer", vx, xdpRedirect, VerdictRedirect},
		{"vxlan from stranger", buildFrame(t, frameOpts{src: stranger, dst: vtep, proto: layers.IPProtocolUDP, dport: 4789}), xdpDrop, VerdictDropPeer},
		{"other port", buildFrame(t, frameOpts{src: peer, dst: vtep, proto: layers.IPProtocolUDP, dport: 53}), xdpPass, VerdictPass},
	} {
		before, _ := p.Counters()
		ret, err := p.XDP().Run(&ebpf.RunOptions{Data: tc.frame})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := p.Counters()
		if ret != tc.action {
			t.Errorf("%s: action %d, want %d", tc.name, ret, tc.action)
		}
		if d := after.Packets[tc.verdict] - before.Packets[tc.verdict]; d != 1 {
			t.Errorf("%s: counter %v delta %d, want 1", tc.name, tc.verdict, d)
		}
	}
	// After Unregister the queue has no socket: passed and counted.
	if err := p.Unregister(0); err != nil {
		t.Fatal(err)
	}
	before, _ := p.Counters()
	ret, err := p.XDP().Run(&ebpf.RunOptions{Data: vx})
	after, _ := p.Counters()
	if err != nil || ret != xdpPass || after.Packets[VerdictNoSocket]-before.Packets[VerdictNoSocket] != 1 {
		t.Errorf("unregistered queue: action %d (%v), no_socket delta %d; want pass and 1", ret, err, after.Packets[VerdictNoSocket]-before.Packets[VerdictNoSocket])
	}
	if err := p.Register(DefaultQueues, s.FD()); err == nil {
		t.Error("Register beyond the map accepted")
	}
}

// TestAttachModes attaches in each mode to a veth in a namespace and
// checks the reported mode; lo has no native XDP, so native must fail
// there rather than fall back.
func TestAttachModes(t *testing.T) {
	a := testbedtest.NewNS(t, "bpfa")
	b := testbedtest.NewNS(t, "bpfb")
	if err := testbed.Veth(a, "va", b, "vb", testbed.VethOpts{}); err != nil {
		t.Fatal(err)
	}
	p, err := Load(Config{VTEPs: []netip.Addr{vtep}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	attached := func() bool {
		l, err := a.Link("va")
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
	}
	for _, tc := range []struct {
		link string
		mode Mode
		want Mode
		fail bool
	}{
		{"va", ModeAuto, ModeNative, false},
		{"va", ModeNative, ModeNative, false},
		{"va", ModeGeneric, ModeGeneric, false},
		{"lo", ModeNative, 0, true},
		{"lo", ModeAuto, ModeGeneric, false},
	} {
		err := a.Do(func() error {
			idx, err := a.LinkIndex(tc.link)
			if err != nil {
				return err
			}
			at, err := p.Attach(idx, tc.mode)
			if tc.fail {
				if err == nil {
					at.Close()
					t.Errorf("%s %v: attach succeeded, want error", tc.link, tc.mode)
				}
				return nil
			}
			if err != nil {
				return err
			}
			if at.Mode() != tc.want {
				t.Errorf("%s %v: mode %v, want %v", tc.link, tc.mode, at.Mode(), tc.want)
			}
			if tc.link == "va" && !attached() {
				t.Errorf("%s %v: link reports no XDP program", tc.link, tc.mode)
			}
			return at.Close()
		})
		if err != nil {
			t.Errorf("%s %v: %v", tc.link, tc.mode, err)
		}
		if attached() {
			t.Errorf("%s %v: program still attached after Close", tc.link, tc.mode)
		}
	}
}
