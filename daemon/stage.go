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
	index  int    // position in the daemon's network list
	device string // the network's device name
	// peers are the remote VTEPs allowed to send to this VNI; a reload
	// replaces the set as a whole (setPeers), the workers read it
	// without a lock.
	peers atomic.Pointer[map[[4]byte]bool]
	// flood lists the same VTEPs in the configured order (they get
	// broadcast and unknown unicast, through the FDB's flood list);
	// written by setPeers only, which the daemon serialises.
	flood [][4]byte
	// lost counts decapsulated frames the device did not take because
	// its write failed as a whole (the device is gone); the snapshot
	// counts them as dropped under the device's write error reason.
	lost atomic.Uint64
	// warned is when (Unix nanoseconds) such a failure was last logged.
	warned atomic.Int64
	// bridge is the TAP's bridge in force ("" for none), and bridgeGone
	// is set while it is missing (logged once); both are read and
	// written under the daemon's reloadMu.
	bridge     string
	bridgeGone bool
	// static are the configured FDB entries (inner MAC → VTEP), which win
	// over learned ones; a reload replaces the map as a whole.
	static atomic.Pointer[map[[6]byte][4]byte]
}

func newNetwork(vni uint32, index int, dev string, peers []netip.Addr) *network {
	n := &network{vni: vni, index: index, device: dev}
	n.setPeers(peers)
	n.setStatic(nil)
	return n
}

// setStatic replaces the network's static FDB entries.
func (n *network) setStatic(m map[[6]byte][4]byte) {
	if m == nil {
		m = map[[6]byte][4]byte{}
	}
	n.static.Store(&m)
}

// lookup returns the VTEP a unicast frame to dst goes to: a static entry,
// else a learned one whose VTEP is still a peer (after a reload removed
// a peer, the stations learned behind it are flooded again).
func (n *network) lookup(fdb *vxlan.FDB, dst [6]byte) ([4]byte, bool) {
	if st := *n.static.Load(); len(st) > 0 {
		if v, ok := st[dst]; ok {
			return v, true
		}
	}
	v, ok := fdb.Lookup(n.vni, dst)
	return v, ok && n.allowed(v)
}

// setPeers replaces the network's peers and returns the new flood list.
func (n *network) setPeers(peers []netip.Addr) [][4]byte {
	set := make(map[[4]byte]bool, len(peers))
	var flood [][4]byte
	for _, p := range peers {
		a := p.Unmap().As4()
		if !set[a] {
			set[a] = true
			flood = append(flood, a)
		}
	}
	n.peers.Store(&set)
	n.flood = flood
	return flood
}

// allowed reports whether vtep is one of the network's peers.
func (n *network) allowed(vtep [4]byte) bool { return (*n.peers.Load())[vtep] }

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
			case !n.allowed(src):
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
