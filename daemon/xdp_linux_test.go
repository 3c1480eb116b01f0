package daemon

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/config"
	"mflow/metrics"
)

// xdpOf returns the XDP verdict counter of s.
func xdpOf(s metrics.Snapshot, verdict string) uint64 {
	for _, x := range s.XDP {
		if x.Verdict == verdict {
			return x.Packets
		}
	}
	return 0
}

// TestE2EXDPVerdicts serves only queue 0 of a two-queue uplink and sends
// VxLAN frames to both queues, with IP options and as fragments: every
// frame for our VTEP shows in mflow_xdp_packets_total under its verdict,
// none is lost silently.
func TestE2EXDPVerdicts(t *testing.T) {
	cfg := testConfig(t, "microflow", 2, 64)
	cfg.Uplink.Queues = config.Queues{List: []int{0}}
	r := startDaemonOn(t, cfg, testbed.Options{WireQueues: 2}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A VxLAN frame built by gopacket; opts adds IPv4 options, frag sets
	// MF.
	build := func(options, frag bool) []byte {
		t.Helper()
		oip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: testbed.PeerUnderlayIP, DstIP: testbed.HostUnderlayIP}
		if options {
			oip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		if frag {
			oip.Flags = layers.IPv4MoreFragments
		}
		oudp := &layers.UDP{SrcPort: 50000, DstPort: testbed.VxLANPort}
		oudp.SetNetworkLayerForChecksum(oip)
		ie := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8}, EthernetType: layers.EthernetTypeIPv4}
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: r.topo.PeerWireMAC, DstMAC: r.topo.HostUplinkMAC, EthernetType: layers.EthernetTypeIPv4},
			oip, oudp, &layers.VXLAN{ValidIDFlag: true, VNI: testbed.VNI}, ie, gopacket.Payload(make([]byte, 64)))
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	before := r.d.Snapshot()
	send := func(frame []byte, n uint64, cpu int) {
		t.Helper()
		st, err := gen.Run(ctx, r.topo.Peer, testbed.PeerWire, frame, gen.Options{Count: n, CPUs: []int{cpu}})
		if err != nil || st.Sent != n {
			t.Fatalf("generator: %+v, %v", st, err)
		}
	}
	send(build(false, false), 50, 0) // queue 0: redirected
	send(build(false, false), 40, 1) // queue 1: no socket
	send(build(true, false), 30, 0)
	send(build(false, true), 20, 0)
	deadline := time.Now().Add(5 * time.Second)
	var s metrics.Snapshot
	for time.Now().Before(deadline) {
		s = r.d.Snapshot()
		if xdpOf(s, "redirected")-xdpOf(before, "redirected") >= 50 && s.Decap.InFlight == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("XDP verdicts %+v", s.XDP)
	for _, c := range []struct {
		verdict string
		want    uint64
	}{{"no_socket", 40}, {"ip_options", 30}, {"fragment", 20}, {"peer_not_allowed", 0}} {
		if got := xdpOf(s, c.verdict) - xdpOf(before, c.verdict); got != c.want {
			t.Errorf("verdict %s: %d frames, want %d", c.verdict, got, c.want)
		}
	}
	if got := xdpOf(s, "redirected") - xdpOf(before, "redirected"); got < 50 {
		t.Errorf("verdict redirected: %d frames, want at least 50", got)
	}
}
