package daemon

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"mflow/vxlan"
	"mflow/xsk"
)

// Transmit-side drop reasons: every frame read from a TAP is transmitted or
// dropped under one of these (segmentation drops are the TAP's own, see
// tap.Reason).
const (
	txNoNeighbour = iota // the next hop's MAC is not resolved (yet)
	txNoFrame            // no free UMEM frame for a flood copy
	txRingFull           // the tx ring stayed full
	txTooBig             // the frame does not fit a UMEM frame with headroom
	txNoPeer             // flooding, but the network has no peers
	txSendError          // the kernel refused the send (socket transmit path)
	numTxReasons
)

var txReasonNames = [numTxReasons]string{"no_neighbour", "umem_exhausted", "tx_ring_full", "frame_too_big", "no_peer", "send_error"}

// txCounters are the transmit side's counters, shared by the encap loops.
type txCounters struct {
	frames, bytes atomic.Uint64 // handed to the tx ring
	copies        atomic.Uint64 // extra copies flooding made (or tried to)
	drops         [numTxReasons]atomic.Uint64
	udpQueued     atomic.Uint64 // tunnel path: packets written to the UDP queues (with RPS)
}

// txBatch is how many frames one encap loop reads from its device at a time.
const txBatch = 64

// nextHops is what the encap loop needs of the neighbour resolver: the MAC
// of a VTEP's next hop, and a way to ask for one not resolved yet.
type nextHops interface {
	lookup(vtep [4]byte) ([6]byte, bool)
	want(vtep [4]byte)
}

// encapLoop moves frames from network i's device to the uplink socket s
// until the device is closed (or d.stopping is set while nothing moves).
// It owns its descriptors between Alloc and Transmit; whatever it holds when
// it stops goes back with Free.
func (d *daemon) encapLoop(i int, s xsk.Queue) {
	t := d.devs[i]
	n := d.nets[i]
	lo, hi, _ := d.cfg.VTEP.SourcePortRange() // validated
	enc := vxlan.Encoder{SrcMAC: d.uplinkMAC, SrcIP: d.vtep, Port: uint16(d.cfg.VTEP.Port), Seed: flowSeed,
		SrcPortMin: lo, SrcPortMax: hi, TTL: uint8(d.cfg.VTEP.TTL), UDPChecksum: d.cfg.VTEP.OuterUDPChecksum(), InheritTOS: true}
	descs := make([]xsk.Desc, txBatch)
	bufs := make([][]byte, txBatch)
	sizes := make([]int, txBatch)
	out := make([]xsk.Desc, 0, 2*txBatch)
	extra := make([]xsk.Desc, 1)
	frameSize := s.Options().FrameSize
	var held int // descs[:held] are allocated and unused
	var lastWarn time.Time
	defer func() {
		if held > 0 {
			s.Free(descs[:held])
		}
		d.txHeld.Store(0)
	}()
	for {
		s.Complete()
		if held < txBatch {
			held += s.Alloc(descs[held:])
		}
		if held == 0 {
			// Every frame is in flight; wait for completions (or for
			// the end, if the uplink no longer sends).
			if d.stopping.Load() {
				return
			}
			// Wait on the socket: it returns once the kernel has
			// completed frames or made room on the ring. Room without
			// completions (a zero-copy NIC still sending) cannot be
			// waited for in poll; then give the NIC a moment.
			if ok, _ := s.PollTx(10 * time.Millisecond); ok && s.Complete() == 0 {
				time.Sleep(20 * time.Microsecond)
			}
			continue
		}
		for k := range held {
			bufs[k] = s.Frame(descs[k])
		}
		// What the loop owns while it waits (the snapshot's measured
		// in flight leaves these out).
		d.txHeld.Store(int64(held))
		m, err := t.Read(bufs[:held], sizes[:held], vxlan.Overhead)
		if err != nil && m == 0 {
			if d.readFailed(t, err, &lastWarn) {
				return
			}
			continue
		}
		// Owned until transmitted or freed below: the snapshot's encap
		// in flight.
		busy := int64(m)
		d.txBusy.Add(busy)
		out = out[:0]
		var queued [txBatch]bool
		for k := range m {
			size := vxlan.Overhead + sizes[k]
			if size > frameSize {
				d.tx.drops[txTooBig].Add(1)
				continue
			}
			pkt := bufs[k][:size]
			dst := vxlan.Ethernet(pkt[vxlan.Overhead:]).Dst()
			if dst[0]&1 == 0 {
				// Static entries first; an entry learned behind a
				// peer that a reload removed is not used.
				if vtep, ok := n.lookup(&d.fdb, dst); ok {
					if d.encapTo(&enc, pkt, n.vni, vtep) {
						out = append(out, xsk.Desc{Addr: descs[k].Addr, Len: uint32(size)})
						queued[k] = true
					}
					continue
				}
			}
			// Broadcast, multicast or unknown unicast: one copy per
			// peer, the original to the last.
			peers := d.fdb.Flood(n.vni)
			if len(peers) == 0 {
				d.tx.drops[txNoPeer].Add(1)
			}
			for p, vtep := range peers {
				target := pkt
				desc := xsk.Desc{Addr: descs[k].Addr, Len: uint32(size)}
				if p < len(peers)-1 {
					d.tx.copies.Add(1)
					d.txBusy.Add(1)
					busy++
					if s.Alloc(extra) == 0 {
						d.tx.drops[txNoFrame].Add(1)
						continue
					}
					target = s.Frame(extra[0])[:size]
					copy(target[vxlan.Overhead:], pkt[vxlan.Overhead:])
					desc = xsk.Desc{Addr: extra[0].Addr, Len: uint32(size)}
				}
				if d.encapTo(&enc, target, n.vni, vtep) {
					out = append(out, desc)
					queued[k] = queued[k] || p == len(peers)-1
				} else if p < len(peers)-1 {
					s.Free(extra[:1])
				}
			}
		}
		d.transmit(s, out)
		// Frames read but not queued (dropped) go back to the free
		// stack; the first m descriptors are consumed either way.
		nd := 0
		for k := range m {
			if !queued[k] {
				descs[nd], descs[k] = descs[k], descs[nd]
				nd++
			}
		}
		if nd > 0 {
			s.Free(descs[:nd])
		}
		copy(descs, descs[m:held])
		held -= m
		d.txBusy.Add(-busy)
	}
}

// readFailed handles an encap loop's failed device read: it reports
// whether the loop is to stop (the daemon is stopping, or the device is
// gone: deleted from outside, or closed, so nothing more will come, said
// once); otherwise it logs at most every 10 s and waits a little before
// the next try.
func (d *daemon) readFailed(t device, err error, lastWarn *time.Time) (stop bool) {
	if d.stopping.Load() {
		return true
	}
	if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADFD) || errors.Is(err, unix.EIO) ||
		strings.Contains(err.Error(), "use of closed file") {
		d.log.Error("device unusable, its transmit direction stops", "device", t.Name(), "err", err)
		return true
	}
	if time.Since(*lastWarn) > 10*time.Second {
		d.log.Warn("reading device", "device", t.Name(), "err", err)
		*lastWarn = time.Now()
	}
	time.Sleep(10 * time.Millisecond)
	return false
}

// encapTo encapsulates pkt for vtep, or counts why it cannot.
func (d *daemon) encapTo(enc *vxlan.Encoder, pkt []byte, vni uint32, vtep [4]byte) bool {
	mac, ok := d.hops.lookup(vtep)
	if !ok {
		d.tx.drops[txNoNeighbour].Add(1)
		d.hops.want(vtep)
		return false
	}
	if !enc.Encap(pkt, vni, &vxlan.Remote{IP: vtep, MAC: mac}) {
		d.tx.drops[txTooBig].Add(1)
		return false
	}
	return true
}

// transmit puts out on the uplink's tx ring, retrying briefly while it is
// full; what does not fit is dropped (tx_ring_full).
func (d *daemon) transmit(s xsk.Queue, out []xsk.Desc) {
	n, _ := xsk.TransmitRetry(s, out, d.down.Load)
	var bytes uint64
	for _, o := range out[:n] {
		bytes += uint64(o.Len)
	}
	d.tx.frames.Add(uint64(n))
	d.tx.bytes.Add(bytes)
	if rest := out[n:]; len(rest) > 0 {
		d.tx.drops[txRingFull].Add(uint64(len(rest)))
		s.Free(rest)
	}
}

// txReasonName returns the metric label of a transmit drop reason.
func txReasonName(r int) string { return txReasonNames[r] }

// pinEncap pins the calling goroutine, encap loop k, to its CPU of
// steering.cpus.encap (without that key it does nothing), and returns
// the function that gives the thread its affinity back and unlocks it,
// to be called by the same goroutine when the loop ends. Leaving the
// thread locked is not enough: a goroutine that ends locked to the
// process's main thread leaves that thread parked for good, with the
// narrow affinity.
func (d *daemon) pinEncap(k int) (restore func()) {
	c := d.cfg.Steering.CPUs
	if c == nil || len(c.Encap) == 0 {
		return func() {}
	}
	cpu := c.Encap[k%len(c.Encap)]
	runtime.LockOSThread()
	var old, set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		d.log.Warn("encap loop not pinned", "loop", k, "cpu", cpu, "err", err)
		return func() {}
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		d.log.Warn("encap loop not pinned", "loop", k, "cpu", cpu, "err", err)
		return func() {}
	}
	d.log.Debug("encap loop pinned", "loop", k, "cpu", cpu)
	return func() {
		// If the old mask cannot be set the thread stays locked and
		// ends with the goroutine.
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		}
	}
}
