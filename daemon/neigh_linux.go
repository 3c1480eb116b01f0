package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// neighbours maps a remote VTEP to the Ethernet address of the underlay
// next hop towards it, from the kernel's routing and neighbour tables. The
// hot path reads an immutable map behind an atomic pointer; misses are
// resolved in the background by provoking the kernel's ARP (a datagram to
// the discard port of the next hop from a socket in the daemon's
// namespace) and reading the neighbour table again.
//
// mflow transmits behind the kernel's back, so the kernel never sees the
// entries it uses being used: a REACHABLE entry ages to STALE and stays
// there, with a MAC that may have changed since. Whenever an entry of a
// next hop in use is STALE, neighbours marks it used (RTM_NEWNEIGH with
// NTF_USE, what `ip neigh change ... use` does), which runs the kernel's
// own state machine: DELAY, a unicast probe, then REACHABLE, or FAILED and
// a fresh broadcast resolution when the peer's address moved. The map
// follows the kernel's table through neighbour notifications (and a
// periodic refresh).
//
// Notifications come from a netlink socket of our own (neighsub_linux.go)
// with a socket filter that lets only the uplink's IPv4 entries through,
// so that the bridges' FDB messages (RTNLGRP_NEIGH carries them too, one
// per MAC learned) cannot fill its buffer. Each notification only marks
// the map dirty; the background goroutine re-reads the table once per
// burst. When the kernel reports that notifications were lost (ENOBUFS),
// the socket is replaced by a new subscription and the table re-read, and
// the overrun is counted.
type neighbours struct {
	h       *netlink.Handle // in the daemon's namespace
	ifindex int
	probe   int // UDP socket used to provoke ARP
	cur     atomic.Pointer[map[[4]byte][6]byte]
	updMu   sync.Mutex // serialises update (the run loop and background)
	wantMu  sync.Mutex
	wanted  map[[4]byte]bool
	kick    chan struct{}
	dirty   chan struct{} // a relevant notification, or a lost one: re-read the table
	done    chan struct{}
	wg      sync.WaitGroup
	reprobe atomic.Uint64 // STALE entries marked used
	// overruns counts the times the kernel dropped notifications for us
	// (ENOBUFS); resubscribed counts new subscriptions after an error.
	overruns, resubscribed atomic.Uint64
	// inject hands the watcher errors to handle as if its socket had
	// returned them (tests; nothing else sends on it).
	inject chan error
	enter  func(func() error) error // runs a function in the daemon's namespace
	log    *slog.Logger
}

// newNeighbours must run inside the daemon's namespace; enter runs a
// function there (for resubscribing later, from another thread).
func newNeighbours(ifindex int, enter func(func() error) error, log *slog.Logger) (*neighbours, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open ARP probe socket: %w", err)
	}
	n := &neighbours{h: h, ifindex: ifindex, probe: fd, wanted: map[[4]byte]bool{}, log: log, enter: enter,
		kick: make(chan struct{}, 1), dirty: make(chan struct{}, 1), done: make(chan struct{}), inject: make(chan error, 1)}
	// The subscription's socket is opened here, in the daemon's
	// namespace; a resubscription reopens it there through enter.
	sub, err := openNeighSub(ifindex)
	if err != nil {
		unix.Close(fd)
		h.Close()
		return nil, fmt.Errorf("subscribe to neighbour notifications: %w", err)
	}
	empty := map[[4]byte][6]byte{}
	n.cur.Store(&empty)
	n.wg.Add(2)
	go n.background()
	go n.watch(sub)
	return n, nil
}

func (n *neighbours) close() {
	close(n.done)
	n.wg.Wait()
	unix.Close(n.probe)
	n.h.Close()
}

// markDirty asks the background goroutine to re-read the table.
func (n *neighbours) markDirty() {
	select {
	case n.dirty <- struct{}{}:
	default:
	}
}

// lookup returns the next-hop MAC for vtep.
func (n *neighbours) lookup(vtep [4]byte) ([6]byte, bool) {
	mac, ok := (*n.cur.Load())[vtep]
	return mac, ok
}

// want asks the background goroutine to resolve vtep.
func (n *neighbours) want(vtep [4]byte) {
	n.wantMu.Lock()
	n.wanted[vtep] = true
	n.wantMu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// nextHop returns the address whose MAC frames to vtep are sent to: the
// route's gateway, or vtep itself when it is on-link.
func (n *neighbours) nextHop(vtep [4]byte) [4]byte {
	routes, err := n.h.RouteGet(net.IP(vtep[:]))
	if err == nil && len(routes) > 0 && routes[0].Gw != nil {
		if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && gw.Unmap().Is4() {
			return gw.Unmap().As4()
		}
	}
	return vtep
}

// neighbour is a usable entry of the kernel's table.
type neighbour struct {
	mac   [6]byte
	state int // NUD_*
}

// table reads the kernel's usable IPv4 neighbours on the uplink.
func (n *neighbours) table() (map[[4]byte]neighbour, error) {
	list, err := n.h.NeighList(n.ifindex, unix.AF_INET)
	if err != nil {
		return nil, err
	}
	return usableNeighbours(list), nil
}

// use marks the kernel's entry of next hop nh as used, as sending through
// the kernel would: a STALE entry moves to DELAY and is probed.
func (n *neighbours) use(nh [4]byte) error {
	return n.h.NeighSet(&netlink.Neigh{LinkIndex: n.ifindex, Family: unix.AF_INET, IP: net.IP(nh[:]), Flags: netlink.NTF_USE})
}

// update rebuilds the map for the given VTEPs (plus those already known).
func (n *neighbours) update(vteps [][4]byte) (missing [][4]byte) {
	n.updMu.Lock()
	defer n.updMu.Unlock()
	tab, err := n.table()
	if err != nil {
		// Keep what we know rather than drop everything.
		return vteps
	}
	for v := range *n.cur.Load() {
		vteps = append(vteps, v)
	}
	next, missing, stale := planNeighbours(tab, vteps, n.nextHop)
	n.cur.Store(&next)
	for nh := range stale {
		if n.use(nh) == nil {
			n.reprobe.Add(1)
		}
	}
	return missing
}

// provoke makes the kernel resolve the next hop of each vtep.
func (n *neighbours) provoke(vteps [][4]byte) {
	for _, v := range vteps {
		nh := n.nextHop(v)
		// Port 9 is discard; the kernel must resolve the next hop to
		// send it, which is all we want.
		unix.Sendto(n.probe, nil, unix.MSG_DONTWAIT, &unix.SockaddrInet4{Port: 9, Addr: nh})
	}
}

// resolve resolves vteps, waiting up to timeout, and returns those still
// unresolved.
func (n *neighbours) resolve(vteps [][4]byte, timeout time.Duration) [][4]byte {
	missing := n.update(vteps)
	deadline := time.Now().Add(timeout)
	for len(missing) > 0 && time.Now().Before(deadline) {
		n.provoke(missing)
		time.Sleep(50 * time.Millisecond)
		missing = n.update(missing)
	}
	return missing
}

// refresh re-reads the table for every known VTEP (MACs change).
func (n *neighbours) refresh() { n.update(nil) }

func (n *neighbours) background() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.dirty:
			// One table read for a burst of notifications.
			n.update(nil)
			continue
		case <-n.kick:
		}
		n.wantMu.Lock()
		var vteps [][4]byte
		for v := range n.wanted {
			vteps = append(vteps, v)
		}
		clear(n.wanted)
		n.wantMu.Unlock()
		n.resolve(vteps, time.Second)
	}
}
