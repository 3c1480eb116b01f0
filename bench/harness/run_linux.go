package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/bpf"
	"mflow/config"
	"mflow/daemon"
	"mflow/metrics"
	"mflow/xsk"
)

// Ports in the container.
const (
	udpPort = 7000
	tcpPort = 7001
)

var (
	ctrIP    = netip.AddrFrom4([4]byte(testbed.CtrOverlayIP))
	peerOvIP = netip.AddrFrom4([4]byte(testbed.PeerOverlayIP))
	peerUnIP = netip.AddrFrom4([4]byte(testbed.PeerUnderlayIP))
	hostUnIP = netip.AddrFrom4([4]byte(testbed.HostUnderlayIP))
)

// env is one mode's testbed and what runs on it.
type env struct {
	o       *Options
	mode    Mode
	topo    *testbed.Topology
	closers []io.Closer
	d       *daemon.Daemon
	dStop   func() error
	ceil    *ceiling
}

func (e *env) close() error {
	var errs []error
	if e.dStop != nil {
		errs = append(errs, e.dStop())
	}
	if e.ceil != nil {
		e.ceil.close()
	}
	for _, c := range slices.Backward(e.closers) {
		c.Close()
	}
	if e.topo != nil {
		errs = append(errs, e.topo.Close())
	}
	return errors.Join(errs...)
}

// otherCPUs returns the CPUs the generator does not use.
func otherCPUs(gen []int) []int {
	var out []int
	for c := range runtime.NumCPU() {
		if !slices.Contains(gen, c) {
			out = append(out, c)
		}
	}
	return out
}

// cpuMask returns the hexadecimal mask of cpus for rps_cpus.
func cpuMask(cpus []int) string {
	words := make([]uint32, (runtime.NumCPU()+31)/32)
	for _, c := range cpus {
		words[c/32] |= 1 << (c % 32)
	}
	var parts []string
	for i := len(words) - 1; i >= 0; i-- {
		parts = append(parts, fmt.Sprintf("%08x", words[i]))
	}
	return strings.Join(parts, ",")
}

// setup builds the testbed and the mode's receive path.
func setup(ctx context.Context, o *Options, m Mode) (e *env, err error) {
	e = &env{o: o, mode: m}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.topo, err = testbed.Build(ctx, testbed.Options{Prefix: o.Prefix, HostVxLAN: m.Kind == ModeKernel || m.Kind == ModeKernelRPS})
	if err != nil {
		return e, err
	}
	host := e.topo.Host
	pass := func() error {
		c, err := gen.AttachPass(host, testbed.HostUplink)
		if err == nil {
			e.closers = append(e.closers, c)
		}
		return err
	}
	switch m.Kind {
	case ModeNative, ModeKernel:
		err = pass()
	case ModeKernelRPS:
		if err = pass(); err == nil {
			others := otherCPUs(o.GenCPUs)
			if len(others) == 0 {
				return e, errors.New("setting RPS: no CPU besides the generator's")
			}
			err = host.SetRPS(testbed.HostUplink, 0, cpuMask(others))
		}
	case ModeCeiling:
		e.ceil, err = openCeiling(host, o)
	case "mflow":
		err = e.startDaemon()
	}
	if err != nil {
		return e, err
	}
	if m.Kind != ModeCeiling {
		// Warm up ARP, the bridge's and the VTEPs' FDBs both ways.
		to := peerOvIP
		if m.Kind == ModeNative {
			to = peerUnIP
		}
		r, err := traffic.Ping(ctx, e.rxNS(), to, 3, 20*time.Millisecond, 2*time.Second)
		if err != nil {
			return e, fmt.Errorf("warming up: %w", err)
		}
		if r.Received == 0 {
			return e, fmt.Errorf("warming up: no ping reply from the peer to the container (%s)", m.Name)
		}
	}
	return e, nil
}

// startDaemon runs mflow in-process for the host namespace, like `mflow
// demo` does, with the mode's policy and workers.
func (e *env) startDaemon() error {
	o, m := e.o, e.mode
	cpus := ""
	if others := otherCPUs(o.GenCPUs); o.Pin && len(others) >= m.Workers+1 {
		var ws []string
		for _, c := range others[1 : 1+m.Workers] {
			ws = append(ws, fmt.Sprint(c))
		}
		cpus = fmt.Sprintf(", cpus: {dispatcher: %d, workers: [%s]}", others[0], strings.Join(ws, ", "))
	}
	batch := o.Batch
	if m.Batch != 0 {
		batch = m.Batch
	}
	device := "tap"
	if m.Device == "veth" {
		device = "veth"
		if err := e.topo.AddMflowVeth(); err != nil {
			return err
		}
	}
	cfg, err := config.Parse(testbed.MflowConfigDevice(device, fmt.Sprintf("policy: %s, workers: %d, batch: %d%s", m.Policy, m.Workers, batch, cpus)))
	if err != nil {
		return fmt.Errorf("configuring mflow: %w", err)
	}
	logW := o.Log
	if logW == nil {
		logW = io.Discard
	}
	d, err := daemon.New(cfg, daemon.Options{Enter: e.topo.Host.Do, Unordered: m.Unordered,
		Logger: slog.New(slog.NewTextHandler(logW, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return fmt.Errorf("starting mflow: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	e.d = d
	e.dStop = func() error {
		cancel()
		return <-done
	}
	return nil
}

// rxNS is the namespace of the receiving application: the container, or
// in native mode the host itself (the paper's "native": the host network,
// no container, no overlay).
func (e *env) rxNS() *testbed.NS {
	if e.mode.Kind == ModeNative {
		return e.topo.Host
	}
	return e.topo.Ctr
}

// rxIP is the address the receiving application listens on.
func (e *env) rxIP() netip.Addr {
	if e.mode.Kind == ModeNative {
		return hostUnIP
	}
	return ctrIP
}

// frame builds the generator's frame for a UDP payload of size bytes:
// VxLAN from the peer's VTEP to the host's, inner peer overlay → container
// port udpPort; in native mode a plain UDP frame 192.0.2.2 → 192.0.2.1
// (no overlay, received by the host itself). Native is deliberately not a
// routed path to the container: the live-frames generator reuses its
// page-pool pages without re-initialising them, and IP forwarding rewrites
// the Ethernet header and TTL in place, so forwarded frames would come
// back corrupted (dropped as OTHERHOST).
func (e *env) frame(size int) (gen.Frame, error) {
	t := e.topo
	ctrMAC, err := t.Ctr.HWAddr(testbed.CtrDev)
	if err != nil {
		return gen.Frame{}, err
	}
	outer := gen.FrameSpec{
		SrcMAC: t.PeerWireMAC, DstMAC: t.HostUplinkMAC, SrcIP: peerUnIP, DstIP: hostUnIP,
		SrcPort: 49152, VNI: testbed.VNI,
	}
	if e.mode.Kind == ModeNative {
		outer.SrcPort, outer.DstPort, outer.VNI = 5000, udpPort, 0
		outer.Size = 14 + 20 + 8 + size
		return gen.BuildFrame(outer)
	}
	peerMAC, err := t.Peer.HWAddr(testbed.VxLANDev)
	if err != nil {
		return gen.Frame{}, err
	}
	outer.Inner = &gen.FrameSpec{SrcMAC: peerMAC, DstMAC: ctrMAC, SrcIP: peerOvIP, DstIP: ctrIP, SrcPort: 5000, DstPort: udpPort}
	outer.Size = 14 + 20 + 8 + 8 + 14 + 20 + 8 + size
	return gen.BuildFrame(outer)
}

// genOptions returns the generator's options for a step.
func (e *env) genOptions(f gen.Frame, s Step) gen.Options {
	g := gen.Options{SeqOffset: f.SeqOffset, TimeOffset: f.TimeOffset, CPUs: e.o.GenCPUs, BatchSize: e.o.GenBatch, Rate: s.Rate}
	if s.Rate > 0 {
		g.BatchSize = 0 // gen picks a batch that keeps pacing fine-grained
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

// ctrRx returns rx_packets of the receiving application's link: ctr0, or
// uplink0 in native mode.
func (e *env) ctrRx() uint64 {
	dev := testbed.CtrDev
	if e.mode.Kind == ModeNative {
		dev = testbed.HostUplink
	}
	l, err := e.rxNS().Link(dev)
	if err != nil || l.Attrs().Statistics == nil {
		return 0
	}
	return l.Attrs().Statistics.RxPackets
}

// mflowCounters are the daemon's counters that a step reports.
type mflowCounters struct{ waits, drops, received, xskDrops float64 }

func (e *env) mflowCounters() mflowCounters {
	if e.d == nil {
		return mflowCounters{}
	}
	s := e.d.Snapshot()
	c := mflowCounters{waits: float64(s.MergerWaits), drops: float64(s.Dropped(metrics.Decap)), received: float64(s.Decap.Received.Packets)}
	for _, x := range s.XSK {
		c.xskDrops += float64(x.RxDropped + x.RxRingFull)
	}
	return c
}

// udp runs one repetition of a UDP (or latency) step.
func (e *env) udp(ctx context.Context, s Step) (Sample, error) {
	f, err := e.frame(s.Size)
	if err != nil {
		return Sample{}, fmt.Errorf("building frame: %w", err)
	}
	var rx *udpReceiver
	if e.ceil != nil {
		e.ceil.start(s.Flows, f.SeqOffset)
	} else {
		n := min(e.o.Receivers, s.Flows)
		if rx, err = listenUDP(e.rxNS(), fmt.Sprintf("%s:%d", e.rxIP(), udpPort), max(n, 1), s.Flows); err != nil {
			return Sample{}, err
		}
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
			lat, _, latErr = traffic.UDPLatency(gctx, e.topo.Peer, e.rxNS(), e.rxIP(), n, 800*time.Microsecond, 200*time.Millisecond)
			if errors.Is(latErr, context.DeadlineExceeded) {
				latErr = nil
			}
		}()
	}
	rx0 := e.ctrRx()
	c0 := e.mflowCounters()
	before, _ := ReadProcStat()
	st, gerr := gen.Run(gctx, e.topo.Peer, testbed.PeerWire, f.Data, e.genOptions(f, s))
	after, _ := ReadProcStat()
	latWG.Wait()
	var checks []*flowCheck
	if e.ceil != nil {
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
	c1 := e.mflowCounters()
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
	if e.ceil == nil {
		m[MLinkRxMpps] = float64(e.ctrRx()-rx0) / dur / 1e6
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
	}
	var busy float64
	for _, c := range sm.CPU {
		busy += c.Busy / 100
	}
	m[MCPUBusy] = busy
	sm.Metrics = m
	return sm, nil
}

// tcp runs one repetition of a TCP step: a Go stream from the peer to the
// container writing s.Size bytes per call for the step's duration. The
// receiver checks every byte against the sent pattern: a step whose
// stream arrives altered fails.
func (e *env) tcp(ctx context.Context, s Step) (Sample, error) {
	var ln net.Listener
	if err := e.rxNS().Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", e.rxIP(), tcpPort))
		return err
	}); err != nil {
		return Sample{}, fmt.Errorf("listening in the container: %w", err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	type recv struct {
		n    int64
		took time.Duration
		err  error
	}
	const readSize = 256 << 10
	pat := newPattern(max(s.Size, readSize))
	got := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- recv{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, readSize)
		check := newStreamCheck(pat)
		var start time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 && check.n == 0 {
				start = time.Now()
			}
			check.add(buf[:k])
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = check.err()
				}
				got <- recv{n: check.n, took: time.Since(start), err: err}
				return
			}
		}
	}()
	var conn net.Conn
	if err := e.topo.Peer.Do(func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err = d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", e.rxIP(), tcpPort))
		return err
	}); err != nil {
		return Sample{}, fmt.Errorf("connecting from the peer: %w", err)
	}
	before, _ := ReadProcStat()
	end := time.Now().Add(e.o.Duration)
	var sent int64
	var werr error
	for time.Now().Before(end) && ctx.Err() == nil {
		n, err := conn.Write(pat.at(sent, s.Size))
		sent += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	conn.Close()
	var r recv
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		r.err = errors.New("no end of stream within 10s")
	}
	after, _ := ReadProcStat()
	if werr != nil {
		return Sample{}, fmt.Errorf("sending: %w", werr)
	}
	if r.err != nil {
		return Sample{}, fmt.Errorf("receiving: %w", r.err)
	}
	if r.n != sent {
		return Sample{}, fmt.Errorf("receiving: got %d of %d bytes", r.n, sent)
	}
	sm := Sample{Seconds: r.took.Seconds(), CPU: CPUUsage(before, after)}
	var busy float64
	for _, c := range sm.CPU {
		busy += c.Busy / 100
	}
	sm.Metrics = map[string]float64{MCPUBusy: busy}
	if r.took > 0 {
		sm.Metrics[MDeliveredGbps] = float64(r.n) * 8 / r.took.Seconds() / 1e9
	}
	return sm, nil
}

// runMode sets a mode up, measures its steps and removes it.
func runMode(ctx context.Context, o *Options, m Mode, p *progress) (results []Result, err error) {
	steps := o.StepsFor(m)
	p.line("%s: building the testbed", m.label())
	e, err := setup(ctx, o, m)
	if err != nil {
		p.done += len(steps) * o.Reps
		return []Result{{Mode: m.Name, Step: steps[0], Error: err.Error()}}, err
	}
	// A Ctrl-C closes the namespaces at once; the defer does the rest.
	stopClose := context.AfterFunc(ctx, func() { e.topo.Close() })
	defer stopClose()
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("removing %s: %w", m.Name, cerr)
		}
	}()
	for _, s := range steps {
		res := Result{Mode: m.Name, Step: s}
		for rep := range o.Reps {
			if ctx.Err() != nil {
				break
			}
			p.line("%s: %s rep %d/%d", m.Name, s, rep+1, o.Reps)
			var sm Sample
			var serr error
			if s.Kind == KindTCP {
				sm, serr = e.tcp(ctx, s)
			} else {
				sm, serr = e.udp(ctx, s)
			}
			p.done++
			if serr != nil {
				res.Error = serr.Error()
				p.line("%s: %s: %v", m.Name, s, serr)
				p.done += o.Reps - rep - 1
				break
			}
			res.Samples = append(res.Samples, sm)
		}
		res.summarise()
		results = append(results, res)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	if e.d != nil {
		snap := e.d.Snapshot()
		if cerr := snap.Check(); cerr != nil {
			err = fmt.Errorf("mflow counters: %w", cerr)
		}
	}
	return results, err
}

// ceiling is an AF_XDP socket on the host's uplink with mflow's XDP
// program, whose frames a loop receives, checks and releases.
type ceiling struct {
	prog *bpf.Program
	att  *bpf.Attachment
	sock *xsk.Socket
	cpu  int
	quit chan struct{}
	done chan *flowCheck
}

func openCeiling(host *testbed.NS, o *Options) (*ceiling, error) {
	c := &ceiling{cpu: -1}
	if others := otherCPUs(o.GenCPUs); o.Pin && len(others) > 0 {
		c.cpu = others[0]
	}
	err := host.Do(func() error {
		ifi, err := net.InterfaceByName(testbed.HostUplink)
		if err != nil {
			return err
		}
		if c.prog, err = bpf.Load(bpf.Config{VTEPs: []netip.Addr{hostUnIP}, Port: testbed.VxLANPort, Queues: 1}); err != nil {
			return fmt.Errorf("loading XDP program: %w", err)
		}
		if c.sock, err = xsk.Open(ifi.Index, 0, xsk.Options{NumFrames: 8192, FillSize: 4096, RxSize: 4096}); err != nil {
			return fmt.Errorf("opening AF_XDP socket: %w", err)
		}
		if err := c.prog.Register(0, c.sock.FD()); err != nil {
			return fmt.Errorf("registering socket: %w", err)
		}
		if c.att, err = c.prog.Attach(ifi.Index, bpf.ModeAuto); err != nil {
			return fmt.Errorf("attaching XDP program: %w", err)
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("setting up the ceiling: %w", err)
	}
	return c, nil
}

// start begins a receive loop that checks flows' sequence numbers at off.
func (c *ceiling) start(flows, off int) {
	c.quit = make(chan struct{})
	c.done = make(chan *flowCheck, 1)
	chk := newFlowCheck(flows)
	go func() {
		if c.cpu >= 0 {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			pinThread(c.cpu)
		}
		descs := make([]xsk.Desc, 256)
		var idleSince time.Time
		quitting := false
		for {
			k := c.sock.Receive(descs)
			if k == 0 {
				if !quitting {
					select {
					case <-c.quit:
						quitting, idleSince = true, time.Now()
					default:
					}
				}
				if quitting && time.Since(idleSince) > 100*time.Millisecond {
					c.done <- chk
					return
				}
				c.sock.Poll(time.Millisecond)
				continue
			}
			now := monoNow()
			for _, d := range descs[:k] {
				if fr := c.sock.Frame(d); len(fr) > off {
					chk.add(fr[off:], now)
				}
			}
			c.sock.Release(descs[:k])
			if quitting {
				idleSince = time.Now()
			}
		}
	}()
}

// stop ends the loop once the socket has been idle and returns its check.
func (c *ceiling) stop() *flowCheck {
	close(c.quit)
	return <-c.done
}

func (c *ceiling) close() {
	if c.att != nil {
		c.att.Close()
	}
	if c.sock != nil {
		c.sock.Close()
	}
	if c.prog != nil {
		c.prog.Close()
	}
}
