package daemon

import (
	"net/netip"
	"sync/atomic"

	"mflow/batch"
	"mflow/vxlan"
)

// network is one configured VNI as the hot path sees it.
type network struct {
	vni    uint32
	index  int              // position in the daemon's network list
	device string           // the network's device name
	peers  map[[4]byte]bool // remote VTEPs allowed to send to this VNI
	flood  [][4]byte        // remote VTEPs that get broadcast and unknown unicast
}

func newNetwork(vni uint32, index int, dev string, peers []netip.Addr) *network {
	n := &network{vni: vni, index: index, peers: make(map[[4]byte]bool, len(peers)), device: dev}
	for _, p := range peers {
		a := p.Unmap().As4()
		if !n.peers[a] {
			n.peers[a] = true
			n.flood = append(n.flood, a)
		}
	}
	return n
}

// networkStage decapsulates, checks that the VNI is configured and that the
// sender is one of its peers, and learns the inner source MAC's VTEP. For a
// delivered frame, Out[i] is the inner frame, Offset[i] its offset in
// Frames[i] (the sink writes the TAP's virtio header into the bytes before
// it), VNI[i] the VNI and Net[i] the network's index. It is safe for concurrent use:
// the network table is read-only after setup and the FDB is lock-free for
// readers.
type networkStage struct {
	dec      vxlan.Decoder
	networks map[uint32]*network
	fdb      *vxlan.FDB
	clock    func() int64 // coarse time for FDB ageing
	// partial counts delivered frames with a partial checksum
	// (vxlan.InfoPartialChecksum, vxlan.InfoInnerPartial), added once per
	// batch.
	partial atomic.Uint64
	// learnFull and learnRated count inner source MACs the FDB refused to
	// learn (vxlan.LearnFull, vxlan.LearnRateLimited); their frames are
	// delivered all the same. Added once per batch.
	learnFull, learnRated atomic.Uint64
}

// Process implements dataplane.Stage.
func (s *networkStage) Process(b *batch.Batch) {
	now := s.clock()
	var partial, full, rated uint64
	for i := range b.N {
		if b.Reason[i] != vxlan.Deliver {
			continue
		}
		frame := b.Out[i]
		inner, vni, src, r, info := s.dec.DecapInfo(frame)
		var n *network
		if r == vxlan.Deliver {
			n = s.networks[vni]
			switch {
			case n == nil:
				r = vxlan.DropUnknownVNI
			case !n.peers[src]:
				r = vxlan.DropPeer
			default:
				switch s.fdb.Learn(vni, vxlan.Ethernet(inner).Src(), src, now) {
				case vxlan.LearnFull:
					full++
				case vxlan.LearnRateLimited:
					rated++
				}
			}
		}
		b.Reason[i] = r
		if r != vxlan.Deliver {
			continue
		}
		if info != 0 {
			// A partial checksum, outer or inner (vtep.partial_checksum:
			// accept); an inner one is completed here, as the sender's
			// device would have done.
			partial++
			if info&vxlan.InfoInnerPartial != 0 {
				vxlan.CompleteInnerChecksum(inner)
			}
		}
		b.Out[i], b.VNI[i], b.Net[i] = inner, vni, int32(n.index)
		b.Offset[i] += uint32(vxlan.InnerOffset(frame))
	}
	if partial != 0 {
		s.partial.Add(partial)
	}
	if full != 0 {
		s.learnFull.Add(full)
	}
	if rated != 0 {
		s.learnRated.Add(rated)
	}
}
