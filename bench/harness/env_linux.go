package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bench/traffic"
	"mflow/config"
	"mflow/daemon"
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
	d       mflowDaemon
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

// setup builds the testbed and the mode's receive path.
func setup(ctx context.Context, o *Options, m Mode) (e *env, err error) {
	e = &env{o: o, mode: m}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.topo, err = testbed.Build(ctx, testbed.Options{Prefix: o.Prefix, HostVxLAN: m.Kind == ModeKernel || m.Kind == ModeKernelRPS, WireOffloads: o.WireOffloads})
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
			// Both receive queues of the host: the uplink's (decap) and
			// that of the container's veth on the bridge (encap).
			err = host.SetRPS(testbed.HostUplink, 0, config.CPUMask(others))
			if err == nil {
				err = host.SetRPS(testbed.HostCtrVeth, 0, config.CPUMask(others))
			}
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
		from, _, to := e.ends(DirEncap)
		r, err := traffic.Ping(ctx, from, to, 3, 20*time.Millisecond, 2*time.Second)
		if err != nil {
			return e, fmt.Errorf("warming up: %w", err)
		}
		if r.Received == 0 {
			return e, fmt.Errorf("warming up: no ping reply from the peer to the container (%s)", m.Name)
		}
	}
	return e, nil
}

// startDaemon runs mflow for the host namespace with the mode's policy
// and workers: as a process of its own (see child.go), or inside the
// harness's process with Options.InProcess.
func (e *env) startDaemon() error {
	o, m := e.o, e.mode
	var pins []string
	if others := otherCPUs(o.GenCPUs); o.Pin && len(others) >= m.Workers+1 {
		pins = append(pins, fmt.Sprintf("dispatcher: %d, workers: [%s]", others[0], cpuList(others[1:1+m.Workers], ", ")))
	}
	if len(m.EncapCPUs) > 0 {
		pins = append(pins, fmt.Sprintf("encap: [%s]", cpuList(m.EncapCPUs, ", ")))
	}
	cpus := ""
	if len(pins) > 0 {
		cpus = ", cpus: {" + strings.Join(pins, ", ") + "}"
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
	if m.Spin != "" {
		cpus += ", spin_us: " + m.Spin
	}
	if m.Inline != "" {
		cpus += ", inline: " + m.Inline
	}
	if m.TapQueues > 0 {
		cpus += fmt.Sprintf(", tap_queues: %d", m.TapQueues)
	}
	if m.TapRPS != "" {
		cpus += fmt.Sprintf(", tap_rps: %q", m.TapRPS)
	}
	vtep := ""
	if m.TransmitRPS != "" {
		vtep = fmt.Sprintf("transmit_rps: %q", m.TransmitRPS)
	}
	uplink := ""
	if m.RxRing > 0 {
		uplink = fmt.Sprintf("rx_ring: %d", m.RxRing)
	}
	yaml := testbed.MflowConfigKeys(device, uplink, vtep, fmt.Sprintf("policy: %s, workers: %d, batch: %d%s", m.Policy, m.Workers, batch, cpus))
	cfg, err := config.Parse(yaml)
	if err != nil {
		return fmt.Errorf("configuring mflow: %w", err)
	}
	if m.Transmit != "" {
		cfg.VTEP.Transmit = config.Transmit(m.Transmit)
	}
	logW := o.Log
	if logW == nil {
		logW = io.Discard
	}
	if !o.InProcess {
		prof := ""
		if o.DaemonCPUProfile != "" {
			prof = fmt.Sprintf("%s.%s", o.DaemonCPUProfile, m.Name)
		}
		c, err := startChild(e.topo.Host.Do, string(yaml), m.Transmit, m.Unordered, prof, logW)
		if err != nil {
			return err
		}
		e.d, e.dStop = c, c.stop
		return nil
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
