package daemon

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/internal/csum"
	"mflow/vxlan"
)

// TestE2EWireFrames captures, on the peer's end of the wire, every frame
// mflow sends while the container pings the peer and streams 5 MB of TCP
// to it, and decodes each with gopacket: IPv4 with a valid header
// checksum and DF, UDP to the VxLAN port from a source port in
// 49152-65535 with a length that matches IPv4's, a valid UDP checksum
// present exactly where vtep.udp_checksum asks for one (the socket path
// always has one; AF_XDP and tunnel none by default, one with
// udp_checksum: true), VxLAN with the I flag and VNI 42, and an inner
// frame that decodes. Every transmit path; the kernel's VxLAN on the peer
// is the judge of content (the TCP stream is checked end to end). The
// tunnel path must hand the kernel its TCP super-frames whole: its
// transmit TAP receives far fewer packets than the wire carries (the
// testbed's wire has segmentation offloads off, so the kernel cuts them
// in front of it, as for its own VxLAN device). A checksum the kernel
// left for the device to finish (the capture's "checksum not ready")
// must hold the pseudo-header sum the device finishes from.
func TestE2EWireFrames(t *testing.T) {
	yes := true
	for _, tt := range []struct {
		name string
		tx   config.Transmit
		csum *bool
	}{
		{"socket", config.TransmitSocket, nil},
		{"af_xdp", config.TransmitAFXDP, nil},
		{"af_xdp_udp_checksum", config.TransmitAFXDP, &yes},
		{"tunnel", config.TransmitTunnel, nil},
		{"tunnel_udp_checksum", config.TransmitTunnel, &yes},
	} {
		tx := tt.tx
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "single", 1, 64)
			cfg.VTEP.Transmit = tx
			cfg.VTEP.UDPChecksum = tt.csum
			wantCsum := cfg.VTEP.OuterUDPChecksum()
			r := startDaemon(t, cfg)
			var fd int
			if err := r.topo.Peer.Do(func() error {
				var err error
				fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
				if err != nil {
					return err
				}
				ifi, err := net.InterfaceByName(testbed.PeerWire)
				if err != nil {
					return err
				}
				tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
				unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
				if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
					return err
				}
				return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
			}); err != nil {
				t.Fatalf("capture socket: %v", err)
			}
			defer unix.Close(fd)
			type captured struct {
				f        []byte
				notReady bool // TP_STATUS_CSUMNOTREADY: a partial checksum
			}
			var (
				mu     sync.Mutex
				frames []captured
				quit   = make(chan struct{})
				done   = make(chan struct{})
			)
			go func() {
				defer close(done)
				buf := make([]byte, 1<<17)
				oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
				for {
					select {
					case <-quit:
						return
					default:
					}
					n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
					if err != nil {
						continue
					}
					if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
						continue // the peer's own frames
					}
					c := captured{f: append([]byte(nil), buf[:n]...)}
					if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
						for _, m := range msgs {
							if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
								c.notReady = (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0])).Status&unix.TP_STATUS_CSUMNOTREADY != 0
							}
						}
					}
					mu.Lock()
					frames = append(frames, c)
					mu.Unlock()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if p, err := traffic.Ping(ctx, r.topo.Ctr, peerOverlay, 5, 20*time.Millisecond, time.Second); err != nil || p.Received == 0 {
				t.Fatalf("ping: %+v, %v", p, err)
			}
			if res, err := traffic.TCPStream(ctx, r.topo.Ctr, r.topo.Peer, peerOverlay, 30*time.Second, 5<<20); err != nil || !res.Verified {
				t.Fatalf("TCP container → peer: %+v, %v", res, err)
			}
			close(quit)
			<-done
			mu.Lock()
			defer mu.Unlock()
			checked, bytes := 0, 0
			for _, c := range frames {
				f := c.f
				p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
				ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ip == nil || !ip.SrcIP.Equal(net.IP(testbed.HostUnderlayIP)) || ip.Protocol != layers.IPProtocolUDP {
					continue // not from mflow's VTEP (ARP, the kernel's own)
				}
				checked++
				bytes += len(f)
				hdr := vxlan.IPv4(f[vxlan.EthernetLen:])
				if !hdr.ChecksumValid() || ip.Flags&layers.IPv4DontFragment == 0 {
					t.Fatalf("frame %d: IPv4 checksum valid %v, DF %v", checked, hdr.ChecksumValid(), ip.Flags&layers.IPv4DontFragment != 0)
				}
				udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if udp == nil || udp.DstPort != testbed.VxLANPort || udp.SrcPort < 49152 || int(udp.Length) != int(ip.Length)-int(ip.IHL)*4 {
					t.Fatalf("frame %d: UDP %+v (IPv4 length %d)", checked, udp, ip.Length)
				}
				seg := f[vxlan.EthernetLen+int(ip.IHL)*4 : vxlan.EthernetLen+int(ip.Length)]
				if (udp.Checksum != 0) != wantCsum {
					t.Fatalf("frame %d: UDP checksum %#x, want one: %v", checked, udp.Checksum, wantCsum)
				}
				pseudo := csum.PseudoIPv4([4]byte(ip.SrcIP.To4()), [4]byte(ip.DstIP.To4()), vxlan.ProtoUDP, len(seg))
				switch {
				case udp.Checksum != 0 && c.notReady:
					if udp.Checksum != csum.Fold(pseudo) {
						t.Fatalf("frame %d: partial UDP checksum %#x, want the pseudo-header sum %#x", checked, udp.Checksum, csum.Fold(pseudo))
					}
				case udp.Checksum != 0:
					if csum.Fold(csum.Sum(seg, pseudo)) != 0xffff {
						t.Fatalf("frame %d: UDP checksum %#x does not verify", checked, udp.Checksum)
					}
				}
				vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if vx == nil || !vx.ValidIDFlag || vx.VNI != testbed.VNI || vx.Payload == nil {
					t.Fatalf("frame %d: VxLAN %+v", checked, vx)
				}
				if inner := gopacket.NewPacket(vx.Payload, layers.LayerTypeEthernet, gopacket.Default); inner.ErrorLayer() != nil {
					t.Fatalf("frame %d: inner frame does not decode: %v", checked, inner.ErrorLayer().Error())
				}
			}
			if checked < 1000 {
				t.Fatalf("checked %d of %d captured frames; want the stream's (over 1000)", checked, len(frames))
			}
			if tx == config.TransmitTunnel {
				writes := txTAPPackets(t, r)
				if writes == 0 || writes > uint64(checked/4) {
					t.Fatalf("tunnel: the transmit TAP took %d packets for %d wire frames; want super-frames (under a quarter)", writes, checked)
				}
				t.Logf("tunnel: %d packets into the transmit TAP", writes)
			}
			t.Logf("%s: %d frames (%d bytes) from mflow checked", tt.name, checked, bytes)
		})
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
