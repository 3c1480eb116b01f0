package tap

import "errors"

// TunnelHdrLen is the virtio header a Tx takes in front of every packet:
// struct virtio_net_hdr_v1_hash_tunnel (Linux 6.17+), the 10-byte
// virtio_net_hdr, two unused 16-bit fields (num_buffers in the v1
// header), the hash report fields (8 bytes, unused), then the offsets of
// the outer transport header and the inner network header.
const TunnelHdrLen = 24

// MaxQueues is the most queues a TAP can have (the kernel's
// MAX_TAP_QUEUES).
const MaxQueues = 256

// Virtio GSO type flags and header flags of GSO over a UDP tunnel
// (linux/virtio_net.h, Linux 6.17+).
const (
	GSOUDPTunnelIPv4  = 0x20 // the super-frame is inside UDP over IPv4
	GSOUDPTunnelIPv6  = 0x40 // the super-frame is inside UDP over IPv6
	FlagUDPTunnelCsum = 8    // the outer UDP checksum is partial, for the kernel to finish per segment
)

// Offsets in the tunnel header of its two tunnel fields.
const (
	tnlOuterTH = 20
	tnlInnerNH = 22
)

// TunnelHdr is the header of one packet written to a Tx: a virtio header
// and, for GSO over a UDP tunnel, the offsets of the outer UDP header and
// of the inner IP header from the start of the outer frame.
type TunnelHdr struct {
	VirtioNetHdr
	OuterTH, InnerNH uint16
}

// Encode writes the header into b[:TunnelHdrLen], zeroing the unused
// fields.
func (h *TunnelHdr) Encode(b []byte) {
	_ = b[TunnelHdrLen-1]
	h.VirtioNetHdr.Encode(b)
	clear(b[VirtioNetHdrLen:tnlOuterTH])
	b[tnlOuterTH], b[tnlOuterTH+1] = byte(h.OuterTH), byte(h.OuterTH>>8)
	b[tnlInnerNH], b[tnlInnerNH+1] = byte(h.InnerNH), byte(h.InnerNH>>8)
}

// ErrNoTunnelGSO is returned by OpenTx when the kernel's TAP driver
// takes no GSO over UDP tunnels (before Linux 6.17).
var ErrNoTunnelGSO = errors.New("tap: the kernel's TAP driver takes no GSO over UDP tunnels (Linux 6.17 or later needed)")
