package daemon

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestUsableNeighbours: only IPv4 entries in a usable state with an
// Ethernet address count.
func TestUsableNeighbours(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	list := []netlink.Neigh{
		{IP: net.IPv4(192, 0, 2, 2), HardwareAddr: mac, State: unix.NUD_REACHABLE},
		{IP: net.IPv4(192, 0, 2, 3), HardwareAddr: mac, State: unix.NUD_STALE},
		{IP: net.IPv4(192, 0, 2, 4), HardwareAddr: mac, State: unix.NUD_FAILED},
		{IP: net.IPv4(192, 0, 2, 5), HardwareAddr: mac, State: unix.NUD_INCOMPLETE},
		{IP: net.IPv4(192, 0, 2, 6), State: unix.NUD_REACHABLE}, // no address
		{IP: net.ParseIP("2001:db8::1"), HardwareAddr: mac, State: unix.NUD_REACHABLE},
		{IP: net.IPv4(192, 0, 2, 7), HardwareAddr: mac, State: unix.NUD_PERMANENT},
	}
	m := usableNeighbours(list)
	var got [][4]byte
	for a := range m {
		got = append(got, a)
	}
	slices.SortFunc(got, func(a, b [4]byte) int { return int(a[3]) - int(b[3]) })
	want := [][4]byte{{192, 0, 2, 2}, {192, 0, 2, 3}, {192, 0, 2, 7}}
	if !slices.Equal(got, want) {
		t.Errorf("usable %v, want %v", got, want)
	}
	if m[[4]byte{192, 0, 2, 3}].state != unix.NUD_STALE || m[[4]byte{192, 0, 2, 2}].mac != [6]byte(mac) {
		t.Errorf("entries %+v", m)
	}
}

// TestPlanNeighbours: a VTEP gets its next hop's MAC (directly or through
// a gateway), a VTEP without a usable entry is missing, and a STALE next
// hop is to be re-probed once however many VTEPs use it.
func TestPlanNeighbours(t *testing.T) {
	gw := [4]byte{192, 0, 2, 254}
	tab := map[[4]byte]neighbour{
		{192, 0, 2, 2}: {mac: [6]byte{2, 0, 0, 0, 0, 2}, state: unix.NUD_REACHABLE},
		gw:             {mac: [6]byte{2, 0, 0, 0, 0, 0xfe}, state: unix.NUD_STALE},
	}
	nextHop := func(v [4]byte) [4]byte {
		if v[2] == 9 { // 198.51.9.x: behind the gateway
			return gw
		}
		return v
	}
	vteps := [][4]byte{{192, 0, 2, 2}, {198, 51, 9, 1}, {198, 51, 9, 2}, {192, 0, 2, 3}}
	next, missing, stale := planNeighbours(tab, vteps, nextHop)
	if next[[4]byte{192, 0, 2, 2}] != ([6]byte{2, 0, 0, 0, 0, 2}) || next[[4]byte{198, 51, 9, 1}] != ([6]byte{2, 0, 0, 0, 0, 0xfe}) ||
		next[[4]byte{198, 51, 9, 2}] != ([6]byte{2, 0, 0, 0, 0, 0xfe}) || len(next) != 3 {
		t.Errorf("next %v", next)
	}
	if !slices.Equal(missing, [][4]byte{{192, 0, 2, 3}}) {
		t.Errorf("missing %v", missing)
	}
	if len(stale) != 1 || !stale[gw] {
		t.Errorf("stale %v, want only the gateway", stale)
	}
}

// TestNeighbourRelevant: only IPv4 notifications of the uplink matter
// (the subscription also delivers the bridge's FDB and other links').
func TestNeighbourRelevant(t *testing.T) {
	n := &neighbours{ifindex: 7}
	for _, tc := range []struct {
		u    netlink.NeighUpdate
		want bool
	}{
		{netlink.NeighUpdate{Neigh: netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET}}, true},
		{netlink.NeighUpdate{Neigh: netlink.Neigh{LinkIndex: 8, Family: unix.AF_INET}}, false},
		{netlink.NeighUpdate{Neigh: netlink.Neigh{LinkIndex: 7, Family: unix.AF_BRIDGE}}, false},
		{netlink.NeighUpdate{Neigh: netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6}}, false},
	} {
		if got := n.relevant(tc.u); got != tc.want {
			t.Errorf("%+v: relevant %v", tc.u.Neigh, got)
		}
	}
}
