package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"mflow/bpf"
	"mflow/config"
	"mflow/internal/ethtool"
)

// checkHost is CheckHost on Linux.
func checkHost(cfg *config.Config) []Check {
	var out []Check
	add := func(name string, err error, ok string) {
		if err != nil {
			out = append(out, Check{Name: name, Detail: err.Error()})
		} else {
			out = append(out, Check{Name: name, OK: true, Detail: ok})
		}
	}
	add("capabilities", checkCaps(), "CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF")
	add("memlock", checkMemlock(cfg), "RLIMIT_MEMLOCK is unlimited or can be raised")
	add("AF_XDP sockets", checkSocket(unix.AF_XDP, unix.SOCK_RAW), "socket(AF_XDP) works")
	_, err := os.Stat("/dev/net/tun")
	add("TUN/TAP", err, "/dev/net/tun present")

	link, err := netlink.LinkByName(cfg.Uplink.Interface)
	if err != nil {
		add("uplink", fmt.Errorf("interface %s: %w", cfg.Uplink.Interface, err), "")
		return out
	}
	a := link.Attrs()
	// The queues in use, where the driver reports its channels (a veth
	// made by iproute2 allocates one per CPU and uses one); netlink only
	// knows the allocated count.
	queues := max(a.NumRxQueues, 1)
	if s, err := ethtool.Open(); err == nil {
		if n, err := s.RxQueues(a.Name); err == nil && n > 0 && n < queues {
			queues = n
		}
		s.Close()
	}
	add("uplink", nil, fmt.Sprintf("%s: index %d, MTU %d, %d rx queues in use (%d allocated), %s", a.Name, a.Index, a.MTU, queues, a.NumRxQueues, a.OperState))
	add("config against host", cfg.CheckHost(config.Host{UplinkMTU: a.MTU, UplinkQueues: queues, NumCPU: runtime.NumCPU(), PossibleCPUs: possibleCPUs()}),
		"MTUs, queues and CPUs fit")
	hasAddr := false
	if addrs, err := netlink.AddrList(link, unix.AF_INET); err == nil {
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap() == cfg.VTEP.Addr() {
				hasAddr = true
			}
		}
	}
	var addrErr error
	if !hasAddr {
		addrErr = fmt.Errorf("%s is not configured on %s: the kernel will not answer ARP for it", cfg.VTEP.Address, a.Name)
	}
	add("VTEP address", addrErr, cfg.VTEP.Address+" is on "+a.Name)
	detail, err := checkKernelVxLAN(cfg.VTEP.Port)
	add("kernel VxLAN", err, detail)
	detail, err = checkTransmit(cfg)
	add("transmit path", err, detail)
	detail, err = checkRPS(cfg, "/sys/class/net/"+a.Name+"/queues/rx-0/rps_cpus", func(p string) error {
		return unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK, unix.AT_EACCESS)
	})
	add("RPS settings", err, detail)
	for i, n := range cfg.Networks {
		switch {
		case n.Device.Type == config.DeviceVeth:
			name := fmt.Sprintf("networks[%d] veth %s", i, n.Device.Name)
			detail, err := checkVeth(n.Device)
			add(name, err, detail)
		case n.Device.Bridge != "":
			name := fmt.Sprintf("networks[%d] bridge %s", i, n.Device.Bridge)
			add(name, checkBridge(n.Device.Bridge), "exists; TAP "+n.Device.Name+" goes on it")
		}
	}

	prog, err := bpf.Load(bpf.Config{VTEPs: []netip.Addr{cfg.VTEP.Addr()}, Port: uint16(cfg.VTEP.Port), Queues: max(a.NumRxQueues, 1)})
	add("XDP program", err, "loads and verifies")
	if err == nil {
		prog.Close()
	}
	detail, err = checkUplinkXDP(a, cfg.Uplink.XDPMode)
	add("XDP on uplink", err, detail)
	return out
}

// checkRPS says whether the RPS settings (vtep.transmit_rps,
// steering.tap_rps) can be applied, by asking whether the process may
// write probe, an rps_cpus file of the same sysfs (they belong to root,
// and /sys may be mounted read-only): auto runs without RPS where it
// cannot (so that is not a failure), a CPU list stops the start.
func checkRPS(cfg *config.Config, probe string, writable func(string) error) (string, error) {
	var on []string
	strict := false
	for _, k := range []struct{ key, v, def string }{
		{"vtep.transmit_rps", cfg.VTEP.TransmitRPS, config.RPSAuto},
		{"steering.tap_rps", cfg.Steering.TapRPS, config.RPSOff},
	} {
		v := k.v
		if v == "" {
			v = k.def
		}
		if v != config.RPSOff {
			on = append(on, k.key+" "+v)
			strict = strict || v != config.RPSAuto
		}
	}
	if len(on) == 0 {
		return "off", nil
	}
	what := strings.Join(on, ", ")
	err := writable(probe)
	switch {
	case err == nil:
		return what + ": rps_cpus is writable", nil
	case errors.Is(err, unix.ENOENT):
		return what + ": not checked (" + probe + " is not in this /sys)", nil
	case !strict:
		return fmt.Sprintf("%s: rps_cpus is not writable here (%v): mflow runs without RPS and says so at start; root or CAP_DAC_OVERRIDE and a writable /sys enable it (docs/OPERATIONS.md §13)", what, err), nil
	}
	return "", fmt.Errorf("%s: rps_cpus is not writable here (%v): a CPU list needs root or CAP_DAC_OVERRIDE and a writable /sys (docs/OPERATIONS.md §13)", what, err)
}

// checkTransmit says which encap path run would take (auto resolved by
// the kernel's version: TUN's UDP-tunnel GSO came with 6.17, TCX with
// 6.6), and fails where an explicit tunnel cannot be had.
func checkTransmit(cfg *config.Config) (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	fmt.Sscanf(release, "%d.%d", &major, &minor)
	tunnelOK := major > 6 || major == 6 && minor >= 17
	veth := false
	for _, n := range cfg.Networks {
		veth = veth || n.Device.Type == config.DeviceVeth
	}
	switch t := cfg.VTEP.Transmit; {
	case t == config.TransmitTunnel && !tunnelOK:
		return "", fmt.Errorf("vtep.transmit: tunnel needs Linux 6.17 or later (TUN UDP-tunnel GSO); this kernel is %s: use socket", release)
	case t == config.TransmitAuto && veth:
		return "auto: socket (a network's device is a veth)", nil
	case t == config.TransmitAuto && !tunnelOK:
		return "auto: socket (kernel " + release + " is older than 6.17)", nil
	case t == config.TransmitAuto:
		return fmt.Sprintf("auto: tunnel (kernel %s), %d TAP queues each", release, cfg.Steering.TapQueueCount()), nil
	}
	return string(cfg.VTEP.Transmit), nil
}

// checkUplinkXDP reports what is attached to the uplink without attaching
// anything, so that `mflow check` changes nothing and works next to a
// running daemon: nothing (run will attach), mflow's own program (a daemon
// serves the uplink), or another program (run would fail).
func checkUplinkXDP(a *netlink.LinkAttrs, mode config.XDPMode) (string, error) {
	x := a.Xdp
	if x == nil || !x.Attached {
		return fmt.Sprintf("none attached; run attaches in %s mode and logs the mode in use (not tried here: check changes nothing)", mode), nil
	}
	name := "unknown"
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId)); err == nil {
		if info, err := p.Info(); err == nil {
			name = info.Name
		}
		p.Close()
	}
	// bpf names its programs mflow_…; the kernel keeps 15 bytes.
	if !strings.HasPrefix(name, "mflow") {
		return "", fmt.Errorf("program %s (id %d) is attached to %s: mflow cannot attach; remove it first (ip link set dev %s xdp off)", name, x.ProgId, a.Name, a.Name)
	}
	return fmt.Sprintf("mflow's program (id %d, %s mode) is attached: a daemon serves %s", x.ProgId, xdpAttachMode(x.AttachMode), a.Name), nil
}

func xdpAttachMode(m uint32) string {
	switch m {
	case nl.XDP_ATTACHED_DRV:
		return "native"
	case nl.XDP_ATTACHED_SKB:
		return "generic"
	case nl.XDP_ATTACHED_HW:
		return "offload"
	}
	return fmt.Sprintf("attach mode %d", m)
}

// checkKernelVxLAN fails when a kernel VxLAN device that is up uses port:
// its UDP socket listens where mflow's XDP program takes the traffic, and
// on a shared bridge both would flood.
func checkKernelVxLAN(port int) (string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("list links: %w", err)
	}
	var down []string
	for _, l := range links {
		v, ok := l.(*netlink.Vxlan)
		if !ok || v.Port != port {
			continue
		}
		if v.Flags&net.FlagUp != 0 {
			return "", fmt.Errorf("%s (VNI %d) is up on UDP port %d, the VTEP's port: take it down first (ip link set %s down), see docs/OPERATIONS.md §3.3", v.Name, v.VxlanId, port, v.Name)
		}
		down = append(down, v.Name)
	}
	if len(down) > 0 {
		return fmt.Sprintf("on port %d only down: %v", port, down), nil
	}
	return fmt.Sprintf("none on port %d", port), nil
}

// checkBridge checks that a TAP's bridge exists (mflow attaches to it, it
// does not create it).
func checkBridge(name string) error {
	br, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%w: mflow puts the TAP on an existing bridge; create it first (ip link add %s type bridge)", err, name)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s is a %s device, not a bridge", name, br.Type())
	}
	return nil
}

// checkVeth checks that a veth device exists and, when a bridge is
// configured, that its peer is here to be put on the bridge.
func checkVeth(dev config.Device) (string, error) {
	link, err := netlink.LinkByName(dev.Name)
	if err != nil {
		return "", fmt.Errorf("%w (type veth expects an existing veth pair)", err)
	}
	if link.Type() != "veth" {
		return "", fmt.Errorf("%s is a %s device, not a veth", dev.Name, link.Type())
	}
	if dev.Bridge == "" {
		return "exists; its peer is yours to attach (with TX checksum offload off)", nil
	}
	a := link.Attrs()
	peer, err := netlink.LinkByIndex(a.ParentIndex)
	if err != nil || peer.Type() != "veth" || peer.Attrs().ParentIndex != a.Index {
		return "", fmt.Errorf("its peer is not in this network namespace: leave bridge out and attach the peer yourself")
	}
	if br, err := netlink.LinkByName(dev.Bridge); err != nil {
		return "", fmt.Errorf("bridge %s: %w", dev.Bridge, err)
	} else if _, ok := br.(*netlink.Bridge); !ok {
		return "", fmt.Errorf("%s is a %s device, not a bridge", dev.Bridge, br.Type())
	}
	return fmt.Sprintf("exists; peer %s goes on bridge %s", peer.Attrs().Name, dev.Bridge), nil
}

func checkSocket(domain, typ int) error {
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	return unix.Close(fd)
}

// Capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capIPCLock  = 14
	capSysAdmin = 21
	capBPF      = 39
)

// effectiveCaps returns the process's effective capability sets.
func effectiveCaps() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

func hasCap(c uint) bool {
	data, err := effectiveCaps()
	return err == nil && data[c/32].Effective&(1<<(c%32)) != 0
}

func checkCaps() error {
	if _, err := effectiveCaps(); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if missing := missingCaps(); len(missing) > 0 {
		return fmt.Errorf("missing %v: run as root or grant them (see examples/mflow.service)", missing)
	}
	return nil
}

// missingCaps lists the capabilities mflow needs that the calling thread
// does not have in its effective set.
func missingCaps() []string {
	has := hasCap
	var missing []string
	for _, c := range []struct {
		n    uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capNetRaw, "CAP_NET_RAW"}} {
		if !has(c.n) {
			missing = append(missing, c.name)
		}
	}
	// CAP_BPF, or CAP_SYS_ADMIN, which implies it.
	if !has(capSysAdmin) && !has(capBPF) {
		missing = append(missing, "CAP_BPF (or CAP_SYS_ADMIN)")
	}
	return missing
}

// checkMemlock verifies that the UMEMs of the queues cfg serves (at
// least one with queues: all, whose count the host decides) and the BPF
// maps fit under RLIMIT_MEMLOCK, or that the limit does not apply.
func checkMemlock(cfg *config.Config) error {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r); err != nil {
		return fmt.Errorf("read RLIMIT_MEMLOCK: %w", err)
	}
	if r.Cur == unix.RLIM_INFINITY || r.Max == unix.RLIM_INFINITY || hasCap(capIPCLock) {
		return nil
	}
	queues := max(len(cfg.Uplink.Queues.List), 1)
	need := uint64(queues)*cfg.Uplink.UMEMBytes() + 16<<20 // and the BPF maps
	if r.Max < need {
		return fmt.Errorf("RLIMIT_MEMLOCK hard limit (%d MiB) is below the %d MiB that %d queue(s) of uplink.rx_ring %d frames need (2 × rx_ring frames of 2 KiB each, plus BPF maps), and CAP_IPC_LOCK is missing: set LimitMEMLOCK=infinity (systemd) or ulimit -l unlimited, or lower uplink.rx_ring",
			r.Max>>20, need>>20, queues, cfg.Uplink.RxRing)
	}
	return nil
}
