package daemon

import (
	"maps"
	"slices"

	"mflow/bpf"
	"mflow/config"
	"mflow/dataplane"
	"mflow/metrics"
	"mflow/tap"
)

// snapshot is Snapshot on Linux.
func (d *daemon) snapshot() metrics.Snapshot {
	if d.down.Load() {
		return d.final
	}
	return d.snapshotAt(false)
}

// snapshotAt takes a snapshot; final says that nothing moves any more (the
// engines and encap loops have stopped), so the counters must balance
// exactly (Flow.Window 0).
func (d *daemon) snapshotAt(final bool) metrics.Snapshot {
	s := metrics.Snapshot{Interface: d.uplinkName, XDPMode: d.xdpMode.String(), Transmit: string(d.txPath)}
	d.enginesMu.Lock()
	engines := append([]*dataplane.Engine(nil), d.engines...)
	d.enginesMu.Unlock()

	// Decap. The engine's snapshot is consistent on its own; TAP write
	// errors move frames from delivered to dropped.
	var rxDrops [dataplane.NumDropReasons]uint64
	for _, e := range engines {
		st := e.Stats()
		s.Decap.Received.Packets += st.Received
		s.Decap.Received.Bytes += st.ReceivedBytes
		s.Decap.Delivered.Packets += st.Delivered
		s.Decap.Delivered.Bytes += st.DeliveredBytes
		for r, n := range st.Dropped {
			rxDrops[r] += n
		}
		s.MicroflowsDispatched += st.Batches
		s.InlineBatches += st.InlineBatches
		s.MergerWaits += st.Merger.Waits
		for i, n := range st.WorkerPackets {
			for len(s.Workers) <= i {
				s.Workers = append(s.Workers, 0)
			}
			s.Workers[i] += n
		}
	}
	for r := 1; r < int(dataplane.NumDropReasons); r++ {
		s.Drops = append(s.Drops, metrics.Drop{Direction: metrics.Decap, Reason: dataplane.DropReason(r).String(), Packets: rxDrops[r]})
	}
	if d.prog != nil {
		if c, err := d.prog.Counters(); err == nil {
			for v := range bpf.NumVerdicts {
				s.XDP = append(s.XDP, metrics.XDPVerdict{Verdict: v.String(), Packets: c.Packets[v]})
			}
		}
	}
	if d.neigh != nil {
		s.NeighbourOverruns = d.neigh.overruns.Load()
	}
	if d.tunTx != nil {
		s.TransmitKernelDrops = d.tunTx.KernelDrops()
	}
	if d.stage != nil {
		s.PartialChecksums = d.stage.partial.Load()
		s.FDB = metrics.FDB{Entries: uint64(d.fdb.Len()), TableFull: d.stage.learnFull.Load(), RateLimited: d.stage.learnRated.Load()}
	}

	// Encap. Read the outcomes before the inputs so that in flight is
	// never negative.
	var txDrops [numTxReasons]uint64
	delivered, deliveredBytes := d.tx.frames.Load(), d.tx.bytes.Load()
	for r := range numTxReasons {
		txDrops[r] = d.tx.drops[r].Load()
	}
	var tapDrops [tap.NumReasons]uint64
	writeErrors := map[string]uint64{"tap_write_error": 0, "veth_tx_error": 0}
	var read, readBytes uint64
	loops := 0
	for i, t := range d.devs {
		ts := t.Stats()
		loops++
		if i < len(d.extra) {
			for _, x := range d.extra[i] { // its other queues: what their loops read
				xs := x.Stats()
				ts.Frames += xs.Frames
				ts.FrameBytes += xs.FrameBytes
				for r, n := range xs.Drops {
					ts.Drops[r] += n
				}
				loops++
			}
		}
		for r, n := range ts.Drops {
			tapDrops[r] += n
		}
		kernelDrops := t.KernelDrops()
		writeErrors[t.WriteErrorReason()] += ts.WriteErrors + d.nets[i].lost.Load()
		read += ts.Frames
		readBytes += ts.FrameBytes
		s.Networks = append(s.Networks, metrics.Network{
			VNI: d.nets[i].vni, Device: t.Name(),
			Delivered:   metrics.Counter{Packets: ts.WritePackets, Bytes: ts.WriteBytes},
			Transmitted: metrics.Counter{Packets: ts.Frames, Bytes: ts.FrameBytes},
			KernelDrops: kernelDrops,
		})
	}
	read += d.tx.copies.Load()
	var dropped uint64
	for r := range numTxReasons {
		s.Drops = append(s.Drops, metrics.Drop{Direction: metrics.Encap, Reason: txReasonName(r), Packets: txDrops[r]})
		dropped += txDrops[r]
	}
	for r := 1; r < int(tap.NumReasons); r++ {
		s.Drops = append(s.Drops, metrics.Drop{Direction: metrics.Encap, Reason: "tap_" + tap.Reason(r).String(), Packets: tapDrops[r]})
		dropped += tapDrops[r]
		read += tapDrops[r]
	}
	s.Encap.Received = metrics.Counter{Packets: read, Bytes: readBytes}
	s.Encap.Delivered = metrics.Counter{Packets: delivered, Bytes: deliveredBytes}
	// Measured: what the encap loops hold in their current iteration.
	s.Encap.InFlight = uint64(max(d.txBusy.Load(), 0))
	if !final {
		// A read counted before the loop holds it, or a flood copy
		// counted before its send: at most a batch (times the peers)
		// per loop.
		peers := 1
		for _, n := range d.nets {
			if p := n.peers.Load(); p != nil {
				peers = max(peers, len(*p))
			}
		}
		s.Encap.Window = uint64(loops * int(max(txBatch, d.txBatchMax.Load())) * (1 + peers))
	}

	// A frame the kernel refused on a TAP write (or a veth's transmit
	// could not take) was counted delivered by the engine once its batch
	// is written; until then it is still in flight there, so move at most
	// what the engine already delivered.
	for _, reason := range slices.Sorted(maps.Keys(writeErrors)) {
		n := min(writeErrors[reason], s.Decap.Delivered.Packets)
		s.Decap.Delivered.Packets -= n
		s.Drops = append(s.Drops, metrics.Drop{Direction: metrics.Decap, Reason: reason, Packets: n})
	}

	// Decap in flight, measured: the uplink frames the stages own, less
	// those the AF_XDP encap loop holds. While packets move, a frame can
	// be owned before it is counted received (dispatcher) and counted
	// delivered before it is released (output): at most one batch each
	// per engine, and the encap loop's current batch.
	var owned int64
	for i, sk := range d.socks {
		a := sk.Accounting()
		owned += int64(a.InFlight)
		s.UMEM = append(s.UMEM, metrics.UMEM{
			Queue: d.queues[i], Size: uint64(a.Frames), Free: uint64(a.Free),
			Fill: uint64(a.Rx - a.RxRing), RX: uint64(a.RxRing), Stages: uint64(a.InFlight),
			TX: uint64(a.Tx - a.CompletionRing), Completion: uint64(a.CompletionRing),
		})
		if ks, err := sk.Stats(); err == nil {
			k := ks.Kernel
			s.XSK = append(s.XSK, metrics.XSK{Queue: d.queues[i], RxDropped: k.RxDropped, RxInvalid: k.RxInvalidDescs,
				TxInvalid: k.TxInvalidDescs, RxRingFull: k.RxRingFull, FillRingEmpty: k.RxFillRingEmpty, TxRingEmpty: k.TxRingEmptyDescs})
		}
	}
	s.Decap.InFlight = uint64(max(owned-d.txHeld.Load(), 0))
	if !final {
		batch := config.DefaultBatch
		if d.cfg != nil {
			batch = d.cfg.Steering.Batch
		}
		s.Decap.Window = uint64(len(engines) * 2 * batch)
		if d.txPath == config.TransmitAFXDP || d.txPath == "" { // "": a daemon of the tests' fakes

			s.Decap.Window += 3 * txBatch // the AF_XDP encap loop's frames between two stores of txHeld
		}
	}
	return s
}
