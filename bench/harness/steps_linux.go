package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/bpf"
	"mflow/metrics"
)

// Ports of the steps' receivers (in the container, or the peer for encap).
const (
	udpPort  = 7000
	tcpPort  = 7001
	rrPort   = 7002
	loadPort = 7003
)

// ends returns, for a direction, the sending and the receiving namespace
// and the receiving address: peer → container for decap, container → peer
// for encap; in native mode the host itself stands for the container and
// the underlay addresses are used (no overlay).
func (e *env) ends(dir string) (from, to *testbed.NS, toIP netip.Addr) {
	t := e.topo
	native := e.mode.Kind == ModeNative
	switch {
	case dir == DirEncap && native:
		return t.Host, t.Peer, peerUnIP
	case dir == DirEncap:
		return t.Ctr, t.Peer, peerOvIP
	case native:
		return t.Peer, t.Host, hostUnIP
	}
	return t.Peer, t.Ctr, ctrIP
}

// frame builds the generator's frame for a UDP payload of size bytes in
// direction dir. Decap: VxLAN from the peer's VTEP to the host's, inner
// peer overlay → container port udpPort; in native mode a plain UDP frame
// 192.0.2.2 → 192.0.2.1 (no overlay, received by the host itself). Native
// is deliberately not a routed path to the container: the live-frames
// generator reuses its page-pool pages without re-initialising them, and
// IP forwarding rewrites the Ethernet header and TTL in place, so
// forwarded frames would come back corrupted (dropped as OTHERHOST).
// Encap: what the container sends, a plain UDP frame ctr0 → the peer's
// overlay address (native: the host's uplink → the peer's underlay
// address); in ceiling mode the VxLAN frame the host's VTEP would send for
// it.
func (e *env) frame(dir string, size int) (gen.Frame, error) {
	t := e.topo
	peerMAC, err := t.Peer.HWAddr(testbed.VxLANDev)
	if err != nil {
		return gen.Frame{}, err
	}
	ctrMAC, err := t.Ctr.HWAddr(testbed.CtrDev)
	if err != nil {
		return gen.Frame{}, err
	}
	const l2l3l4 = 14 + 20 + 8
	if dir == DirEncap {
		inner := gen.FrameSpec{SrcMAC: ctrMAC, DstMAC: peerMAC, SrcIP: ctrIP, DstIP: peerOvIP, SrcPort: 5000, DstPort: udpPort, Size: l2l3l4 + size}
		switch e.mode.Kind {
		case ModeNative:
			return gen.BuildFrame(gen.FrameSpec{SrcMAC: t.HostUplinkMAC, DstMAC: t.PeerWireMAC, SrcIP: hostUnIP, DstIP: peerUnIP,
				SrcPort: 5000, DstPort: udpPort, Size: l2l3l4 + size})
		case ModeCeiling:
			inner.Size = 0
			return gen.BuildFrame(gen.FrameSpec{SrcMAC: t.HostUplinkMAC, DstMAC: t.PeerWireMAC, SrcIP: hostUnIP, DstIP: peerUnIP,
				SrcPort: 49152, VNI: testbed.VNI, Inner: &inner, Size: l2l3l4 + 8 + l2l3l4 + size})
		}
		return gen.BuildFrame(inner)
	}
	outer := gen.FrameSpec{
		SrcMAC: t.PeerWireMAC, DstMAC: t.HostUplinkMAC, SrcIP: peerUnIP, DstIP: hostUnIP,
		SrcPort: 49152, VNI: testbed.VNI,
	}
	if e.mode.Kind == ModeNative {
		outer.SrcPort, outer.DstPort, outer.VNI = 5000, udpPort, 0
		outer.Size = l2l3l4 + size
		return gen.BuildFrame(outer)
	}
	outer.Inner = &gen.FrameSpec{SrcMAC: peerMAC, DstMAC: ctrMAC, SrcIP: peerOvIP, DstIP: ctrIP, SrcPort: 5000, DstPort: udpPort}
	outer.Size = l2l3l4 + 8 + l2l3l4 + size
	return gen.BuildFrame(outer)
}

// genOptions returns the generator's options for a step.
func (e *env) genOptions(f gen.Frame, s Step) gen.Options {
	g := gen.Options{SeqOffset: f.SeqOffset, TimeOffset: f.TimeOffset, CPUs: e.o.GenCPUs, BatchSize: e.o.GenBatch, Rate: s.Rate}
	if s.Rate > 0 && s.Kind == KindLatency {
		// gen picks a batch that keeps pacing fine-grained for the
		// latency probes. A paced UDP step keeps the unpaced steps'
		// batch: each flush costs the kernel's in-context path alike,
		// so both paths are offered the same rate in the same bursts.
		g.BatchSize = 0
	}
	if s.Flows > 1 {
		g.FlowOffsets = f.SrcPortOffsets
		for i := range s.Flows {
			var fl []uint16
			for j := range f.SrcPortOffsets {
				base := uint16(49152)
				if j == len(f.SrcPortOffsets)-1 {
					base = 5000
				}
				fl = append(fl, base+uint16(i))
			}
			g.Flows = append(g.Flows, fl)
		}
	}
	return g
}

// genLink returns where the UDP generator of direction dir transmits
// (namespace and link) and the link that receives its frames, which must
// run NAPI for veth to accept them (gen.AttachPass).
func (e *env) genLink(dir string) (ns *testbed.NS, link string, rxNS *testbed.NS, rxLink string) {
	t := e.topo
	switch {
	case dir == DirEncap && e.mode.Kind == ModeNative:
		return t.Host, testbed.HostUplink, t.Peer, testbed.PeerWire
	case dir == DirEncap:
		return t.Ctr, testbed.CtrDev, t.Host, testbed.HostCtrVeth
	}
	return t.Peer, testbed.PeerWire, t.Host, testbed.HostUplink
}

// appRx returns rx_packets of the receiving application's link: ctr0
// (native: uplink0) for decap, the peer's vxlan42 (native: wire0) for
// encap.
func (e *env) appRx(dir string) uint64 {
	ns, dev := e.topo.Ctr, testbed.CtrDev
	switch {
	case dir == DirEncap && e.mode.Kind == ModeNative:
		ns, dev = e.topo.Peer, testbed.PeerWire
	case dir == DirEncap:
		ns, dev = e.topo.Peer, testbed.VxLANDev
	case e.mode.Kind == ModeNative:
		ns, dev = e.topo.Host, testbed.HostUplink
	}
	l, err := ns.Link(dev)
	if err != nil || l.Attrs().Statistics == nil {
		return 0
	}
	return l.Attrs().Statistics.RxPackets
}

// mflowCounters are the daemon's counters that a step reports, and the
// uplink XDP program's verdicts with the decap frames they are checked
// against.
type mflowCounters struct {
	waits, drops, received, xskDrops float64
	deviceDrops, txKernelDrops       float64
	xdpRedirected, xdpNoSocket       float64
	decapReceived                    float64
}

func (e *env) mflowCounters(dir string) mflowCounters {
	if e.d == nil {
		return mflowCounters{}
	}
	s := e.d.Snapshot()
	mdir := metrics.Decap
	if dir == DirEncap {
		mdir = metrics.Encap
	}
	c := mflowCounters{waits: float64(s.MergerWaits), drops: float64(s.Dropped(mdir)), received: float64(s.Flow(mdir).Received.Packets)}
	for _, x := range s.XSK {
		c.xskDrops += float64(x.RxDropped + x.RxRingFull)
	}
	for _, n := range s.Networks {
		c.deviceDrops += float64(n.KernelDrops)
	}
	c.txKernelDrops = float64(s.TransmitKernelDrops)
	c.decapReceived = float64(s.Decap.Received.Packets)
	if xc, err := e.d.XDPCounters(); err == nil {
		c.xdpRedirected = float64(xc.Packets[bpf.VerdictRedirect])
		c.xdpNoSocket = float64(xc.Packets[bpf.VerdictNoSocket])
	}
	return c
}

// udp runs one repetition of a UDP (or latency) step.
func (e *env) udp(ctx context.Context, s Step) (Sample, error) {
	dir := s.dir()
	f, err := e.frame(dir, s.Size)
	if err != nil {
		return Sample{}, fmt.Errorf("building frame: %w", err)
	}
	_, to, toIP := e.ends(dir)
	var rx *udpReceiver
	rxCeiling := e.ceil != nil && dir == DirDecap
	if rxCeiling {
		e.ceil.start(s.Flows, f.SeqOffset)
	} else {
		n := min(e.o.Receivers, s.Flows)
		if rx, err = listenUDP(to, fmt.Sprintf("%s:%d", toIP, udpPort), max(n, 1), s.Flows); err != nil {
			return Sample{}, err
		}
	}
	gns, glink, gRxNS, gRxLink := e.genLink(dir)
	if dir == DirEncap && e.ceil == nil {
		// The generator's frames leave through a veth whose other end
		// runs no NAPI in the baseline set-up (the container's veth on
		// the bridge; the peer's end of the wire in native mode):
		// attach a pass program for the step only, because XDP on a
		// veth turns software GSO off on its peer, which the TCP steps
		// need as a real container has it.
		c, err := gen.AttachPass(gRxNS, gRxLink)
		if err != nil {
			if rx != nil {
				rx.close()
			}
			return Sample{}, fmt.Errorf("attaching the generator's receiving end: %w", err)
		}
		defer c.Close()
	}
	var (
		lat    traffic.Latency
		latErr error
		latWG  sync.WaitGroup
	)
	gctx, cancel := context.WithTimeout(ctx, e.o.Duration)
	defer cancel()
	if s.Kind == KindLatency {
		latWG.Add(1)
		go func() {
			defer latWG.Done()
			n := int(e.o.Duration / time.Millisecond)
			lat, _, latErr = traffic.UDPLatency(gctx, e.topo.Peer, to, toIP, n, 800*time.Microsecond, 200*time.Millisecond)
			if errors.Is(latErr, context.DeadlineExceeded) {
				latErr = nil
			}
		}()
	}
	rx0 := e.appRx(dir)
	c0 := e.mflowCounters(dir)
	before, _ := ReadProcStat()
	var st gen.Stats
	var gerr error
	if e.ceil != nil && dir == DirEncap {
		st, gerr = e.ceil.transmit(gctx, f, e.genOptions(f, s), e.o.Duration)
	} else {
		st, gerr = gen.Run(gctx, gns, glink, f.Data, e.genOptions(f, s))
	}
	after, _ := ReadProcStat()
	latWG.Wait()
	var checks []*flowCheck
	if rxCeiling {
		checks = []*flowCheck{e.ceil.stop()}
	} else {
		rx.drain(100*time.Millisecond, 2*time.Second)
		checks = rx.checks
	}
	if gerr != nil {
		return Sample{}, fmt.Errorf("generating: %w", gerr)
	}
	if latErr != nil {
		return Sample{}, fmt.Errorf("measuring round trips: %w", latErr)
	}
	c1 := e.mflowCounters(dir)
	recv, ooo, dups, jumps, owd := totals(checks)
	dur := st.Duration.Seconds()
	sm := Sample{Sent: st.Sent, Recv: recv, Seconds: dur, CPU: CPUUsage(before, after)}
	m := map[string]float64{
		MOfferedMpps:   float64(st.Sent) / dur / 1e6,
		MDeliveredMpps: float64(recv) / dur / 1e6,
		MDeliveredGbps: float64(recv) * float64(s.Size) * 8 / dur / 1e9,
		MOutOfOrder:    float64(ooo),
		MReorderEvents: float64(jumps),
		MDuplicates:    float64(dups),
	}
	if recv > 0 {
		m[MOutOfOrderPct] = 100 * float64(ooo) / float64(recv)
	}
	if st.Sent > 0 {
		m[MWireDropPct] = 100 * float64(st.LinkTxDropped) / float64(st.Sent)
		m[MLossPct] = 100 * float64(st.Sent-min(st.Sent, recv)) / float64(st.Sent)
	}
	if !rxCeiling {
		m[MLinkRxMpps] = float64(e.appRx(dir)-rx0) / dur / 1e6
		if rx.drops >= 0 {
			m[MRxSocketDrops] = float64(rx.drops)
		}
	}
	if len(owd) > 0 {
		slices.Sort(owd)
		m[MOWDP50], m[MOWDP99], m[MOWDP999] = Percentile(owd, .5), Percentile(owd, .99), Percentile(owd, .999)
	}
	if lat.Samples > 0 {
		us := func(d time.Duration) float64 { return float64(d) / 1e3 }
		m[MRTTP50], m[MRTTP99], m[MRTTP999] = us(lat.P50), us(lat.P99), us(lat.P999)
	}
	if e.d != nil {
		m[MMergerWaits], m[MMflowDropped] = c1.waits-c0.waits, c1.drops-c0.drops
		m[MMflowRxMpps], m[MXSKDrops] = (c1.received-c0.received)/dur/1e6, c1.xskDrops-c0.xskDrops
		m[MDeviceDrops], m[MTxKernelDrops] = c1.deviceDrops-c0.deviceDrops, c1.txKernelDrops-c0.txKernelDrops
		m[MXDPRedirected], m[MXDPNoSocket] = c1.xdpRedirected-c0.xdpRedirected, c1.xdpNoSocket-c0.xdpNoSocket
		m[MXDPUnaccounted] = m[MXDPRedirected] - (c1.decapReceived - c0.decapReceived) - m[MXSKDrops]
	}
	m[MCPUBusy] = busyCores(sm.CPU)
	sm.Metrics = m
	return sm, nil
}

func busyCores(cs []CoreUsage) float64 {
	var busy float64
	for _, c := range cs {
		busy += c.Busy / 100
	}
	return busy
}

// tcpCheckEvery is the stride of the reads the built-in TCP client's
// receiver checks in full; it checks the others at their edges, so that
// the check does not limit the goodput (traffic.BulkOptions.CheckEvery).
const tcpCheckEvery = 8

// tcp runs one repetition of a TCP step: s.Flows streams in direction
// s.Dir for the step's duration with the step's client, writes of s.Size
// bytes. The built-in client (traffic.Bulk) checks what arrives, sampled
// (see tcpCheckEvery); a step whose streams arrive altered or short fails.
func (e *env) tcp(ctx context.Context, s Step) (Sample, error) {
	from, to, toIP := e.ends(s.dir())
	addr := netip.AddrPortFrom(toIP, tcpPort)
	before, _ := ReadProcStat()
	var gbps float64
	if s.Client == ClientIperf3 {
		var err error
		if gbps, err = iperf3(ctx, from, to, addr, max(s.Flows, 1), s.Size, e.o.Duration); err != nil {
			return Sample{}, err
		}
	} else {
		r, err := traffic.Bulk(ctx, from, to, addr, traffic.BulkOptions{Streams: max(s.Flows, 1), Size: s.Size, Duration: e.o.Duration, CheckEvery: tcpCheckEvery})
		if err != nil {
			return Sample{}, err
		}
		gbps = r.Gbps()
	}
	after, _ := ReadProcStat()
	sm := Sample{Seconds: e.o.Duration.Seconds(), CPU: CPUUsage(before, after)}
	sm.Metrics = map[string]float64{MCPUBusy: busyCores(sm.CPU), MDeliveredGbps: gbps}
	return sm, nil
}

// rr runs one repetition of a request/response step: the client in the
// peer, the server in the container (native: the host), and for a loaded
// step a built-in TCP stream in direction s.Load from before the first
// transaction to after the last.
func (e *env) rr(ctx context.Context, s Step) (Sample, error) {
	peer, ctr, ctrAddr := e.ends(DirDecap)
	var (
		load    traffic.BulkResult
		loadErr error
		loadWG  sync.WaitGroup
	)
	if s.Load != "" {
		from, to, toIP := e.ends(s.Load)
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			load, loadErr = traffic.Bulk(ctx, from, to, netip.AddrPortFrom(toIP, loadPort), traffic.BulkOptions{Size: 128 << 10, Duration: e.o.Duration + 300*time.Millisecond, CheckEvery: tcpCheckEvery})
		}()
		time.Sleep(150 * time.Millisecond) // let the stream reach its rate
	}
	before, _ := ReadProcStat()
	res, err := rr(ctx, s.Proto, peer, ctr, netip.AddrPortFrom(ctrAddr, rrPort), s.Size, e.o.Duration)
	after, _ := ReadProcStat()
	loadWG.Wait()
	if err != nil {
		return Sample{}, fmt.Errorf("%s request/response: %w", s.Proto, err)
	}
	if loadErr != nil {
		return Sample{}, fmt.Errorf("background stream: %w", loadErr)
	}
	if res.Transactions == 0 {
		return Sample{}, fmt.Errorf("%s request/response: no transaction completed (%d lost)", s.Proto, res.Lost)
	}
	sm := Sample{Seconds: res.Seconds, CPU: CPUUsage(before, after)}
	m := rrMetrics(res)
	m[MCPUBusy] = busyCores(sm.CPU)
	if s.Load != "" {
		m[MLoadGbps] = load.Gbps()
	}
	sm.Metrics = m
	return sm, nil
}
