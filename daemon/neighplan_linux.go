package daemon

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The neighbour resolver's decisions, apart from its netlink I/O
// (neigh_linux.go), so that they are tested without a kernel.

// usableStates are the NUD states whose link-layer address mflow sends to.
const usableStates = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP

// usableNeighbours returns the IPv4 entries of list in a usable state with
// an Ethernet address, by address.
func usableNeighbours(list []netlink.Neigh) map[[4]byte]neighbour {
	m := map[[4]byte]neighbour{}
	for _, e := range list {
		if e.State&usableStates == 0 || len(e.HardwareAddr) != 6 {
			continue
		}
		if a, ok := netip.AddrFromSlice(e.IP); ok && a.Unmap().Is4() {
			m[a.Unmap().As4()] = neighbour{mac: [6]byte(e.HardwareAddr), state: e.State}
		}
	}
	return m
}

// planNeighbours maps every VTEP to the MAC of its next hop (nextHop) in
// tab: next is the new map, missing the VTEPs whose next hop has no usable
// entry, stale the next hops whose entries are STALE (to be marked used,
// so that the kernel re-probes them: mflow's frames bypass it).
func planNeighbours(tab map[[4]byte]neighbour, vteps [][4]byte, nextHop func([4]byte) [4]byte) (next map[[4]byte][6]byte, missing [][4]byte, stale map[[4]byte]bool) {
	next = map[[4]byte][6]byte{}
	stale = map[[4]byte]bool{}
	for _, v := range vteps {
		nh := nextHop(v)
		if e, ok := tab[nh]; ok {
			next[v] = e.mac
			if e.state == unix.NUD_STALE {
				stale[nh] = true
			}
		} else {
			missing = append(missing, v)
		}
	}
	return next, missing, stale
}

// relevant reports whether a neighbour notification can change the map:
// an IPv4 entry of the uplink.
func (n *neighbours) relevant(u netlink.NeighUpdate) bool {
	return u.LinkIndex == n.ifindex && u.Family == unix.AF_INET
}
