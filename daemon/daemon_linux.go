package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bpf"
	"mflow/config"
	"mflow/dataplane"
	"mflow/metrics"
	"mflow/steer"
	"mflow/tap"
	"mflow/veth"
	"mflow/vxlan"
	"mflow/xsk"
)

// daemon is Daemon on Linux.
type daemon struct {
	cfg   *config.Config
	log   *slog.Logger
	enter func(func() error) error

	uplinkName  string
	uplinkIndex int
	uplinkMTU   int
	uplinkMAC   [6]byte
	queues      []int
	vtep        [4]byte

	prog  *bpf.Program
	att   *bpf.Attachment
	socks []xsk.Queue

	nets  []*network
	byVNI map[uint32]*network
	devs  []device     // per network: its TAP or veth
	devMu []sync.Mutex // one writer at a time per device
	fdb   vxlan.FDB
	neigh *neighbours
	hops  nextHops        // d.neigh, or a fake in tests
	pools []*sockPool     // per network, with vtep.transmit: socket
	tunTx *tap.Tx         // with vtep.transmit: tunnel, one queue per encap loop (two with transmit_rps)
	extra [][]*tap.Device // per network: its TAP's queues after the first (tunnel path)
	// tapSteer is the queue-selection program of multi-queue TAPs.
	tapSteer *bpf.Steering
	redir    *bpf.Redirect // from tunTx's ingress to the uplink
	// txUDP is the first of tunTx's UDP queues (those with RPS, one per
	// encap loop, after the loops' own), 0 when there are none.
	txUDP  int
	txPath config.Transmit // vtep.transmit, auto resolved
	stage  *networkStage
	policy steer.Policy
	// unordered bypasses the microflow merger (Options.Unordered).
	unordered bool

	enginesMu  sync.Mutex
	engines    []*dataplane.Engine
	tx         txCounters
	xdpMode    bpf.Mode
	started    time.Time
	devsOnce   sync.Once
	stopping   atomic.Bool      // the transmit loops are to end
	txHeld     atomic.Int64     // uplink UMEM frames the AF_XDP encap loop holds while it waits for its device
	txBusy     atomic.Int64     // frames (and flood copies) the encap loops hold in their current iteration
	txBatchMax atomic.Int64     // the most wire frames one tunnel encap iteration held (for the encap window)
	serving    atomic.Bool      // Run started every engine and loop and is not stopping
	down       atomic.Bool      // set once teardown released the sockets
	final      metrics.Snapshot // the last snapshot, taken before teardown

	reloadMu sync.Mutex     // serialises reloads against each other and teardown
	live     *config.Config // the configuration in force (cfg, or the last reload)
}

// newDaemon is New on Linux.
func newDaemon(cfg *config.Config, o Options) (d *daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d = &daemon{cfg: cfg, live: cfg, log: o.Logger, enter: o.Enter, byVNI: map[uint32]*network{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.enter == nil {
		d.enter = func(fn func() error) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			return fn()
		}
	}
	pol, err := steer.ParsePolicy(string(cfg.Steering.Policy))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d.policy = pol
	d.unordered = o.Unordered && pol == steer.Microflow
	if d.unordered {
		d.log.Warn("merger bypassed: flows will be delivered out of order (benchmark option)")
	} else if o.Unordered {
		d.log.Warn("merger bypass ignored: only the microflow policy has a merger", "policy", pol.String())
	}
	d.vtep = cfg.VTEP.Addr().As4()
	for i, n := range cfg.Networks {
		nw := newNetwork(n.VNI24(), i, n.Device.Name, n.PeerAddrs())
		nw.setStatic(staticEntries(n))
		nw.bridge = n.Device.Bridge
		d.nets = append(d.nets, nw)
		d.byVNI[nw.vni] = nw
	}
	defer func() {
		if err != nil {
			d.teardown()
			d = nil
		}
	}()
	err = d.enter(func() error { return explainSetup(d.setup(o)) })
	if err != nil {
		return d, err
	}
	d.stage = &networkStage{
		dec:      vxlan.Decoder{Port: uint16(cfg.VTEP.Port), Reserved: reservedPolicy(cfg.VTEP.ReservedBits), Partial: partialPolicy(cfg.VTEP.PartialChecksum)},
		networks: d.byVNI,
		fdb:      &d.fdb,
		clock:    coarseClock,
	}
	d.fdb.SetLimits(cfg.FDB.MaxLearned, cfg.FDB.LearnRate)
	for _, n := range d.nets {
		d.fdb.SetFlood(n.vni, n.flood)
	}
	return d, nil
}

func reservedPolicy(p config.ReservedPolicy) vxlan.ReservedPolicy {
	if p == config.ReservedDrop {
		return vxlan.ReservedStrict
	}
	return vxlan.ReservedIgnore
}

func partialPolicy(p config.PartialPolicy) vxlan.PartialPolicy {
	if p == config.PartialDrop {
		return vxlan.PartialDrop
	}
	return vxlan.PartialAccept
}

// coarseClock returns Unix seconds, the FDB's clock.
func coarseClock() int64 { return time.Now().Unix() }

// flowSeed seeds the inner flow hash that picks the outer source port.
const flowSeed = 0x6d666c77

// xdpCounters is XDPCounters on Linux.
func (d *daemon) xdpCounters() (bpf.Counters, error) {
	if d.prog == nil {
		return bpf.Counters{}, errors.New("xdp counters: the program is closed")
	}
	return d.prog.Counters()
}

// setup runs inside the served namespace.
func (d *daemon) setup(o Options) error {
	cfg := d.cfg
	link, err := netlink.LinkByName(cfg.Uplink.Interface)
	if err != nil {
		return fmt.Errorf("%w: find uplink %s: %w", ErrSetup, cfg.Uplink.Interface, err)
	}
	a := link.Attrs()
	d.uplinkName, d.uplinkIndex, d.uplinkMTU = a.Name, a.Index, a.MTU
	copy(d.uplinkMAC[:], a.HardwareAddr)
	nq := max(a.NumRxQueues, 1)
	if err := cfg.CheckHost(config.Host{UplinkMTU: a.MTU, UplinkQueues: nq, NumCPU: runtime.NumCPU(), PossibleCPUs: possibleCPUs()}); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	all := cfg.Uplink.Queues.All || len(cfg.Uplink.Queues.List) == 0
	if all {
		for q := 0; q < nq; q++ {
			d.queues = append(d.queues, q)
		}
	} else {
		d.queues = append(d.queues, cfg.Uplink.Queues.List...)
	}
	maxQ := 0
	for _, q := range d.queues {
		maxQ = max(maxQ, q)
	}

	d.prog, err = bpf.Load(bpf.Config{
		VTEPs:  []netip.Addr{cfg.VTEP.Addr()},
		Port:   uint16(cfg.VTEP.Port),
		Queues: maxQ + 1,
	})
	if err != nil {
		return fmt.Errorf("%w: load XDP program: %w", ErrSetup, err)
	}
	for _, q := range d.queues {
		xo := xsk.Options{NumFrames: o.Frames}
		if o.Frames == 0 {
			// The fill ring gets the rx ring's size in frames, and the
			// UMEM as many again for the transmit side (NumFrames is a
			// power of two; the transmit side takes what it needs).
			r := cfg.Uplink.RxRing
			xo = xsk.Options{NumFrames: 2 * r, FillSize: r, RxSize: r}
		}
		s, err := xsk.Open(d.uplinkIndex, q, xo)
		if err != nil && all && q > 0 && errors.Is(err, unix.EINVAL) {
			// A device may allocate more receive queues than it uses
			// (a veth made by iproute2 allocates one per possible
			// CPU and uses one), and netlink reports only the
			// allocated count; the kernel refuses to bind a queue
			// beyond the ones in use with EINVAL. Serve those.
			d.log.Info("uplink uses fewer receive queues than it allocates: serving the ones in use",
				"interface", d.uplinkName, "allocated", nq, "in_use", q)
			d.queues = d.queues[:q]
			break
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (is queue %d in use by the device? `ethtool -l %s` shows the counts)", err, q, d.uplinkName)
			}
			return fmt.Errorf("%w: open AF_XDP socket on %s queue %d: %w", ErrSetup, d.uplinkName, q, err)
		}
		d.socks = append(d.socks, s)
		if err := d.prog.Register(q, s.FD()); err != nil {
			return fmt.Errorf("%w: register socket of queue %d: %w", ErrSetup, q, err)
		}
		d.log.Info("AF_XDP socket bound", "interface", d.uplinkName, "queue", q, "zerocopy", s.ZeroCopy())
	}
	mode, err := bpf.ParseMode(string(cfg.Uplink.XDPMode))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d.att, err = d.prog.Attach(d.uplinkIndex, mode)
	if err != nil {
		return fmt.Errorf("%w: attach XDP program to %s (%s mode): %w", ErrSetup, d.uplinkName, mode, err)
	}
	d.xdpMode = d.att.Mode()
	d.log.Info("XDP program attached", "interface", d.uplinkName, "mode", d.xdpMode.String())

	d.devMu = make([]sync.Mutex, len(cfg.Networks))
	d.extra = make([][]*tap.Device, len(cfg.Networks))
	// The transmit path first: the tunnel path's TAPs get several queues.
	if err := d.setupTransmit(); err != nil {
		return err
	}
	frameSize := d.socks[0].Options().FrameSize
	rpsCPUs, err := cfg.Steering.TapRPSCPUs(allowedCPUs())
	if err != nil {
		return fmt.Errorf("%w: steering.tap_rps: %w", ErrConfig, err) // validated: cannot happen
	}
	for i, n := range cfg.Networks {
		mtu := n.Device.MTU
		if mtu == 0 {
			mtu = config.DefaultDeviceMTU
		}
		// An inner frame plus the outer headers must fit one UMEM frame
		// behind the kernel's receive headroom (the kernel drops longer
		// ones before mflow sees them).
		if room := frameSize - xsk.RxHeadroom; mtu+vxlan.EthernetLen+vxlan.VLANTagLen+vxlan.Overhead > room {
			return fmt.Errorf("%w: networks[%d].device.mtu %d: an encapsulated frame would not fit the %d bytes a %d-byte UMEM frame receives (at most %d)",
				ErrConfig, i, mtu, room, frameSize, room-vxlan.EthernetLen-vxlan.VLANTagLen-vxlan.Overhead)
		}
		if n.Device.Type == config.DeviceVeth {
			v, err := veth.Open(n.Device.Name, mtu, n.Device.Bridge) // closes what it opened on error
			var ce *veth.ConfigError
			switch {
			case errors.As(err, &ce) && ce.Field != "":
				return fmt.Errorf("%w: networks[%d].device.%s: %w", ErrConfig, i, ce.Field, ce.Err)
			case errors.As(err, &ce):
				return fmt.Errorf("%w: networks[%d].device: %w", ErrConfig, i, ce.Err)
			case err != nil:
				return fmt.Errorf("%w: veth %s: %w", ErrSetup, n.Device.Name, err)
			}
			d.devs = append(d.devs, v)
			if len(rpsCPUs) > 0 {
				d.log.Warn("steering.tap_rps applies to TAP networks only; not set on this veth", "device", v.Name())
			}
			d.log.Info("veth ready", "device", v.Name(), "vni", n.VNI, "peer_bridge", n.Device.Bridge,
				"mtu", mtu, "queues", v.Queues(), "xdp_mode", v.Mode().String())
			continue
		}
		// Several queues (one encap loop each) on the tunnel path: the
		// device is created multi-queue and down, and put on its bridge
		// and up only once every queue and the steering program are
		// attached, so that no frame is queued before its flow's queue
		// is fixed.
		mq := d.txPath == config.TransmitTunnel && cfg.Steering.TapQueueCount() > 1
		qlen := n.Device.TAPQueueLen()
		t, err := tap.Open(tap.Options{Name: n.Device.Name, MTU: mtu, QueueLen: qlen, Bridge: n.Device.Bridge, MultiQueue: mq, Down: mq})
		if err != nil && mq && errors.Is(err, unix.EINVAL) {
			// An existing single-queue TAP adopted: one queue.
			mq = false
			t, err = tap.Open(tap.Options{Name: n.Device.Name, MTU: mtu, QueueLen: qlen, Bridge: n.Device.Bridge})
		}
		if err != nil {
			return fmt.Errorf("%w: open TAP %s: %w", ErrSetup, n.Device.Name, err)
		}
		t.SetReadSpin(cfg.Steering.Spin())
		d.devs = append(d.devs, t)
		if mq {
			if err := d.setupTAPQueues(i, t); err != nil {
				return err
			}
			if err := t.Up(n.Device.Bridge); err != nil {
				return fmt.Errorf("%w: %w", ErrSetup, err)
			}
		}
		rps, err := d.setRPS("steering.tap_rps", cfg.Steering.TapRPS, rpsCPUs, t.SetRPS)
		if err != nil {
			return err
		}
		d.log.Info("TAP ready", "device", t.Name(), "vni", n.VNI, "bridge", n.Device.Bridge,
			"mtu", mtu, "adopted", t.Adopted(), "offloads", t.Offloads().String(), "queues", 1+len(d.extra[i]), "rps_cpus", rps)
	}

	d.neigh, err = newNeighbours(d.uplinkIndex, d.enter, d.log)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	d.hops = d.neigh
	var peers [][4]byte
	for _, n := range d.nets {
		peers = append(peers, n.flood...)
	}
	if missing := d.neigh.resolve(peers, 3*time.Second); len(missing) > 0 {
		// Not fatal: a peer may come up later; its frames are dropped
		// (no_neighbour) until it answers ARP.
		d.log.Warn("underlay neighbours not resolved yet", "peers", fmt.Sprint(missing))
	}
	return nil
}

// setRPS applies the RPS setting of key (value v, CPUs cpus; nil: off)
// with set and returns the mask set, or "off". A failure stops the start
// for a CPU list; for auto, which is a default, it is logged and the
// device works without RPS.
func (d *daemon) setRPS(key, v string, cpus []int, set func(mask string) error) (string, error) {
	if len(cpus) == 0 {
		return "off", nil
	}
	mask := config.CPUMask(cpus)
	err := set(mask)
	switch {
	case err != nil && (v == config.RPSAuto || v == ""):
		d.log.Warn(key+": auto not applied, going on without RPS (docs/OPERATIONS.md §13)", "err", err)
		return "off", nil
	case err != nil:
		return "", fmt.Errorf("%w: %s: %w", ErrSetup, key, err)
	}
	return mask, nil
}

// allowedCPUs lists the CPUs this process may run on (nil if unknown).
func allowedCPUs() []int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return nil
	}
	var out []int
	for c := 0; len(out) < set.Count(); c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// possibleCPUs is the number of CPUs the kernel knows, one more than the
// highest CPU number (0 if unknown).
func possibleCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0
	}
	cpus, err := config.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return cpus[len(cpus)-1] + 1
}

// setupTransmit opens what the encap path needs: the UDP socket pools
// (socket), or the transmit TAP and its redirect to the uplink (tunnel);
// auto takes tunnel when every network is a TAP and the kernel has TUN
// UDP-tunnel GSO and TCX, socket otherwise.
func (d *daemon) setupTransmit() error {
	cfg := d.cfg
	d.txPath = cfg.VTEP.Transmit
	if d.txPath == config.TransmitAuto {
		d.txPath = config.TransmitTunnel
		for _, n := range cfg.Networks {
			if n.Device.Type == config.DeviceVeth {
				d.txPath = config.TransmitSocket
			}
		}
	}
	if d.txPath == config.TransmitTunnel {
		err := d.openTunnel()
		if err != nil && cfg.VTEP.Transmit == config.TransmitAuto {
			d.closeTunnel()
			if errors.Is(err, tap.ErrNoTunnelGSO) {
				// A kernel older than 6.17: expected, nothing to mend.
				d.log.Info("transmit path: socket (the tunnel path is not available here)", "reason", err)
			} else {
				// The kernel has the tunnel path and opening it failed:
				// say so louder, the socket path is slower for TCP.
				d.log.Warn("transmit path: socket, because the tunnel path failed to open (docs/OPERATIONS.md §12)", "reason", err)
			}
			d.txPath = config.TransmitSocket
		} else if err != nil {
			return fmt.Errorf("%w: vtep.transmit: tunnel: %w", ErrSetup, err)
		}
	}
	if d.txPath == config.TransmitTunnel && d.tunTx.Queues() > d.encapLoops() {
		// The second half of the queues, UDP's, gets RPS
		// (tunWriter.queue).
		loops := d.encapLoops()
		cpus, _ := cfg.TransmitRPSCPUs(allowedCPUs()) // as openTunnel planned
		rps, err := d.setRPS("vtep.transmit_rps", cfg.VTEP.TransmitRPS, cpus, func(mask string) error {
			return d.tunTx.SetRPS(mask, func(q int) bool { return q >= loops })
		})
		if err != nil {
			return err
		}
		if rps != "off" {
			d.txUDP = loops
		}
		d.log.Info("transmit TAP: RPS for UDP flows", "device", d.tunTx.Name(), "rps_cpus", rps)
	}
	if d.txPath != config.TransmitTunnel && cfg.VTEP.TransmitRPS != "" && cfg.VTEP.TransmitRPS != config.RPSAuto && cfg.VTEP.TransmitRPS != config.RPSOff {
		d.log.Warn("vtep.transmit_rps applies to the tunnel transmit path only; not set", "path", string(d.txPath))
	}
	if d.txPath == config.TransmitSocket {
		if u := cfg.VTEP.UDPChecksum; u != nil && !*u {
			return fmt.Errorf("%w: vtep.udp_checksum: false needs the tunnel or af_xdp transmit path, and the tunnel path is not available here", ErrConfig)
		}
		for range d.nets {
			lo, hi, _ := cfg.VTEP.SourcePortRange() // validated
			p, err := newSockPool(d.vtep, uint16(cfg.VTEP.Port), lo, hi, cfg.VTEP.TTL, flowSeed)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrSetup, err)
			}
			d.pools = append(d.pools, p)
		}
	}
	d.log.Info("transmit path", "path", string(d.txPath), "configured", string(cfg.VTEP.Transmit))
	return nil
}

// tapQueues is the number of queues (encap loops) planned for network
// i's device, and so the transmit TAP queues it is given; an adopted
// single-queue TAP uses only the first.
func (d *daemon) tapQueues(i int) int {
	if d.txPath != config.TransmitTunnel {
		return 1
	}
	return d.cfg.Steering.TapQueueCount()
}

// encapLoops is the number of transmit TAP queues planned, over every
// network.
func (d *daemon) encapLoops() int {
	n := 0
	for i := range d.nets {
		n += d.tapQueues(i)
	}
	return n
}

// setupTAPQueues attaches the program that spreads flows over the queues
// of network i's multi-queue TAP t, and its other queues.
func (d *daemon) setupTAPQueues(i int, t *tap.Device) error {
	if d.tapSteer == nil {
		var err error
		if d.tapSteer, err = bpf.NewSteering(); err != nil {
			return fmt.Errorf("%w: %w", ErrSetup, err)
		}
	}
	if err := t.SetSteering(d.tapSteer.FD()); err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	for range d.tapQueues(i) - 1 {
		x, err := tap.Open(tap.Options{Name: t.Name(), MultiQueue: true, Down: true})
		if err != nil {
			return fmt.Errorf("%w: open another queue of TAP %s: %w", ErrSetup, t.Name(), err)
		}
		x.SetReadSpin(d.cfg.Steering.Spin())
		d.extra[i] = append(d.extra[i], x)
	}
	return nil
}

// openTunnel creates the transmit TAP (one queue per planned encap loop,
// and as many again for UDP flows when vtep.transmit_rps is on) and
// redirects its ingress to the uplink.
func (d *daemon) openTunnel() error {
	name := fmt.Sprintf("mfx%d", d.uplinkIndex)
	cpus, err := d.cfg.TransmitRPSCPUs(allowedCPUs())
	if err != nil {
		return fmt.Errorf("vtep.transmit_rps: %w", err) // validated: cannot happen
	}
	queues := d.encapLoops()
	switch {
	case len(cpus) > 0 && 2*queues <= tap.MaxQueues:
		queues *= 2 // a queue with RPS for UDP flows beside each loop's own
	case len(cpus) > 0 && d.cfg.VTEP.TransmitRPS != "" && d.cfg.VTEP.TransmitRPS != config.RPSAuto:
		return fmt.Errorf("vtep.transmit_rps: %d encap loops leave the transmit TAP no room for as many UDP queues (at most %d queues)", queues, tap.MaxQueues)
	case len(cpus) > 0:
		d.log.Warn("vtep.transmit_rps: auto not applied, the transmit TAP has no room for UDP queues beside one queue per encap loop",
			"loops", queues, "max_queues", tap.MaxQueues)
	}
	if d.tunTx, err = tap.OpenTx(name, queues); err != nil {
		return err
	}
	if d.redir, err = bpf.AttachRedirect(d.tunTx.Index(), d.uplinkIndex); err != nil {
		return err
	}
	d.log.Info("transmit TAP ready", "device", name, "queues", d.tunTx.Queues(), "redirect_to", d.uplinkName)
	return nil
}

// run is Run on Linux.
func (d *daemon) run(ctx context.Context) error {
	d.started = time.Now()
	engCtx, stopEngines := context.WithCancel(context.Background())
	defer stopEngines()
	cfg := d.cfg
	var wg sync.WaitGroup
	errs := make(chan error, len(d.socks)+len(d.devs))

	for i, s := range d.socks {
		ecfg := dataplane.Config{
			Policy:    d.policy,
			Workers:   cfg.Steering.Workers,
			Batch:     cfg.Steering.Batch,
			Unordered: d.unordered,
			Inline:    cfg.Steering.InlineFrames(),
			Stages:    []dataplane.Stage{d.stage},
		}
		if d.policy == steer.Single {
			ecfg.Workers = 1
		}
		// steering.cpus pins the engine of the first queue only (the
		// others stay unpinned; the config's documentation says so).
		if c := cfg.Steering.CPUs; c != nil && i == 0 {
			ecfg.Affinity = &dataplane.Affinity{Dispatcher: c.Dispatcher, Workers: c.Workers}
		}
		src := newXSKSource(s, cfg.Steering.Batch)
		src.spin.For = cfg.Steering.Spin()
		e, err := dataplane.New(src, newDeviceSink(d, cfg.Steering.Batch), ecfg)
		if err != nil {
			// Engines already running use the sockets: stop them
			// before the UMEMs go away.
			stopEngines()
			wg.Wait()
			d.teardown()
			return fmt.Errorf("create engine for queue %d: %w", d.queues[i], err)
		}
		d.enginesMu.Lock()
		d.engines = append(d.engines, e)
		d.enginesMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Run(engCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("engine of queue %d: %w", d.queues[i], err)
			}
		}()
	}
	var txWG sync.WaitGroup
	base := 0 // network i's first transmit TAP queue
	for i := range d.devs {
		if d.tunTx != nil {
			// One loop per TAP queue, each with its own transmit
			// queue (validated: TAPs only on this path).
			for q, t := range append([]*tap.Device{d.devs[i].(*tap.Device)}, d.extra[i]...) {
				txq := base + q
				txWG.Add(1)
				go func() {
					defer txWG.Done()
					defer d.pinEncap(txq)()
					d.encapLoopTunnel(i, t, txq)
				}()
			}
			base += d.tapQueues(i)
			continue
		}
		txWG.Add(1)
		go func() {
			defer txWG.Done()
			defer d.pinEncap(i)()
			if d.pools != nil {
				d.encapLoopSocket(i, d.pools[i])
			} else {
				d.encapLoop(i, d.socks[0])
			}
		}()
	}
	refresh := time.NewTicker(10 * time.Second)
	defer refresh.Stop()
	links, stopWatch, err := d.watchLinks()
	if err != nil {
		d.log.Warn("devices are checked every 10 s only", "err", err)
	}
	defer func() {
		if stopWatch != nil {
			stopWatch()
		}
	}()
	d.serving.Store(true)
	d.log.Info("mflow running", "policy", d.policy.String(), "workers", cfg.Steering.Workers, "spin", cfg.Steering.Spin().String(), "inline", cfg.Steering.InlineFrames(),
		"batch", cfg.Steering.Batch, "queues", fmt.Sprint(d.queues))

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errs:
			runErr = err
			break loop
		case _, ok := <-links:
			if !ok {
				links = nil // subscribed again at the next tick
				continue
			}
			for drained := false; !drained; { // one check for a burst
				select {
				case _, ok := <-links:
					if !ok {
						links, drained = nil, true
					}
				default:
					drained = true
				}
			}
			if err := d.checkDevices(); err != nil {
				runErr = err
				break loop
			}
		case <-refresh.C:
			d.neigh.refresh()
			d.fdb.Expire(coarseClock() - 300)
			if links == nil {
				if stopWatch != nil {
					stopWatch()
				}
				links, stopWatch, _ = d.watchLinks()
			}
			if err := d.checkDevices(); err != nil {
				runErr = err
				break loop
			}
		}
	}
	d.serving.Store(false)
	d.log.Info("stopping: detaching XDP, draining")
	// 1. Stop receiving: frames already in the rx rings are still drained.
	if d.att != nil {
		if err := d.att.Close(); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("detach XDP program: %w", err))
		}
		d.att = nil
	}
	// 2. Drain the engines.
	stopEngines()
	wg.Wait()
	// 3. Stop the transmit loops by closing the TAPs (they also
	// disappear if we created them).
	d.closeTAPs()
	txWG.Wait()
	st := d.snapshot()
	d.log.Info("drained",
		"decap_received", st.Decap.Received.Packets, "decap_delivered", st.Decap.Delivered.Packets,
		"decap_dropped", st.Dropped(metrics.Decap), "encap_received", st.Encap.Received.Packets,
		"encap_transmitted", st.Encap.Delivered.Packets, "encap_dropped", st.Dropped(metrics.Encap))
	d.teardown()
	return runErr
}

// closeTAPs closes every network device once; a TAP mflow created
// disappears, a veth stays (without mflow's program and sockets).
func (d *daemon) closeTAPs() {
	d.stopping.Store(true)
	d.devsOnce.Do(func() {
		for i, t := range d.devs {
			d.devMu[i].Lock()
			if tt, ok := t.(*tap.Device); ok && len(d.extra[i]) > 0 && tt.Adopted() {
				// A TAP that outlives mflow does not keep its program.
				if err := tt.SetSteering(-1); err != nil {
					d.log.Warn("removing the TAP's steering program", "device", t.Name(), "err", err)
				}
			}
			for _, x := range d.extra[i] {
				if err := x.Close(); err != nil {
					d.log.Warn("closing a device queue", "device", x.Name(), "err", err)
				}
			}
			if err := t.Close(); err != nil {
				d.log.Warn("closing device", "device", t.Name(), "err", err)
			}
			d.devMu[i].Unlock()
		}
	})
}

// teardown releases every kernel object still held; it is safe to call
// on a partly set up daemon and more than once.
func (d *daemon) teardown() {
	if d.att != nil {
		d.att.Close()
		d.att = nil
	}
	d.closeTAPs()
	if !d.down.Load() {
		d.final = d.snapshotAt(true)
		d.down.Store(true)
	}
	for _, s := range d.socks {
		if err := s.Close(); err != nil {
			d.log.Warn("closing AF_XDP socket", "err", err)
		}
	}
	if d.prog != nil {
		d.prog.Close()
		d.prog = nil
	}
	d.reloadMu.Lock()
	if d.neigh != nil {
		d.neigh.close()
		d.neigh = nil
	}
	d.reloadMu.Unlock()
	for _, p := range d.pools {
		p.close()
	}
	d.pools = nil
	d.closeTunnel()
}

// closeTunnel detaches the redirect and closes the transmit TAP (after
// the encap loops stopped writing to it).
func (d *daemon) closeTunnel() {
	if d.redir != nil {
		if err := d.redir.Close(); err != nil {
			d.log.Warn("detaching the transmit TAP's redirect", "err", err)
		}
		d.redir = nil
	}
	if d.tapSteer != nil {
		d.tapSteer.Close()
		d.tapSteer = nil
	}
	if d.tunTx != nil {
		if err := d.tunTx.Close(); err != nil {
			d.log.Warn("closing the transmit TAP", "device", d.tunTx.Name(), "err", err)
		}
		d.tunTx = nil
	}
}
