package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The neighbour notification socket: NETLINK_ROUTE, group RTNLGRP_NEIGH,
// with a classic BPF filter so that the kernel queues only RTM_NEWNEIGH /
// RTM_DELNEIGH of family AF_INET on the uplink. Without it every bridge FDB
// change on the host (AF_BRIDGE, one per MAC a bridge learns) lands in the
// socket's buffer too.

const (
	// neighSubBuffer is the receive buffer asked for (SO_RCVBUFFORCE, or
	// SO_RCVBUF up to net.core.rmem_max without CAP_NET_ADMIN).
	neighSubBuffer = 1 << 20
	// neighSubPoll bounds how long the watcher blocks in recvfrom, so that
	// it notices close and injected errors.
	neighSubPoll = 200 * time.Millisecond
	// neighSubRetry is the pause before reopening a failed subscription.
	neighSubRetry = time.Second
)

// neighFilter returns the socket filter: accept a message whose ndmsg has
// family AF_INET and ifindex, drop everything else. Netlink fields are in
// host byte order; BPF word loads read big-endian, hence the conversion of
// the constant.
func neighFilter(ifindex int) []unix.SockFilter {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(int32(ifindex)))
	k := binary.BigEndian.Uint32(b[:])
	const (
		familyOff  = unix.NLMSG_HDRLEN     // ndmsg.ndm_family
		ifindexOff = unix.NLMSG_HDRLEN + 4 // ndmsg.ndm_ifindex
	)
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: familyOff},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.AF_INET, Jt: 0, Jf: 3},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: ifindexOff},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xFFFFFFFF},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
}

// openNeighSub opens a filtered neighbour notification socket in the
// calling thread's namespace.
func openNeighSub(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("open netlink socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	filter := neighFilter(ifindex)
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return -1, fmt.Errorf("attach neighbour filter: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, neighSubBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, neighSubBuffer) // best effort
	}
	tv := unix.NsecToTimeval(neighSubPoll.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return -1, fmt.Errorf("set netlink receive timeout: %w", err)
	}
	// Bound after the filter: nothing unfiltered is ever queued.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_NEIGH - 1)}); err != nil {
		return -1, fmt.Errorf("bind to neighbour notifications: %w", err)
	}
	ok = true
	return fd, nil
}

// watch reads notifications from fd until close. A relevant notification
// marks the map dirty. An overrun (ENOBUFS: the kernel dropped
// notifications) or any other error replaces the socket with a new
// subscription, made before the table is re-read so that no change falls
// between the two.
func (n *neighbours) watch(fd int) {
	defer n.wg.Done()
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-n.done:
			return
		default:
		}
		var err error
		select {
		case err = <-n.inject:
		default:
			var k int
			k, _, err = unix.Recvfrom(fd, buf, 0)
			if err == nil {
				if n.relevantMessages(buf[:k]) {
					n.markDirty()
				}
				continue
			}
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // the poll timeout
		}
		if errors.Is(err, unix.ENOBUFS) {
			n.overruns.Add(1)
			n.log.Warn("neighbour notifications lost (socket overrun): resubscribing and re-reading the table")
		} else {
			n.log.Warn("neighbour notifications", "err", err, "action", "resubscribing")
		}
		unix.Close(fd)
		fd = -1
		for fd < 0 {
			// In the daemon's namespace: this goroutine's thread may be
			// in another one.
			err = n.enter(func() error {
				var err error
				fd, err = openNeighSub(n.ifindex)
				return err
			})
			if err != nil {
				if fd >= 0 {
					unix.Close(fd) // opened, but the thread could not leave the namespace
				}
				fd = -1
				n.log.Warn("neighbour notifications", "err", err, "retry", neighSubRetry)
				select {
				case <-n.done:
					return
				case <-time.After(neighSubRetry):
				}
			}
		}
		n.resubscribed.Add(1)
		n.markDirty()
	}
}

// relevantMessages reports whether a datagram from the subscription holds
// a notification that can change the map (the filter already keeps out
// the rest; this double-checks what the kernel let through). Only the
// ndmsg header is read; a datagram that does not parse counts as
// relevant, so that the table is re-read rather than a change missed.
func (n *neighbours) relevantMessages(b []byte) bool {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return true
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH && m.Header.Type != unix.RTM_DELNEIGH {
			continue
		}
		if len(m.Data) < unix.SizeofNdMsg {
			return true
		}
		u := netlink.NeighUpdate{Type: m.Header.Type}
		u.Family = int(m.Data[0])
		u.LinkIndex = int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
		if n.relevant(u) {
			return true
		}
	}
	return false
}
