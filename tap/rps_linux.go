package tap

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"mflow/internal/sysfs"
)

// rpsCtl sets receive packet steering (queues/rx-N/rps_cpus) on one
// network device: a TAP's or the transmit TAP's. It remembers the
// device's namespace, so that it works from any thread, and, for a device
// mflow adopted, the masks it found, which close puts back.
type rpsCtl struct {
	mu    sync.Mutex
	name  string
	index int
	nsFD  int               // the device's network namespace; -1 once closed
	keep  bool              // put the old masks back at close (an adopted device)
	old   map[string]string // rps_cpus by queue before the first set
}

// newRPSCtl returns the control of device name (index) in the calling
// thread's network namespace.
func newRPSCtl(name string, index int, adopted bool) (*rpsCtl, error) {
	fd, err := sysfs.OpenNetns()
	if err != nil {
		return nil, err
	}
	return &rpsCtl{name: name, index: index, nsFD: fd, keep: adopted}, nil
}

// set writes mask, a CPU mask in the hexadecimal form of rps_cpus ("2"
// for CPU 1, "0" for none), to every receive queue of the device, or,
// with only, to the queues only accepts.
func (r *rpsCtl) set(mask string, only func(q int) bool) error {
	if r == nil {
		return errors.New("device not open")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.inSysfs(func(dir string) error {
		qs, err := rxQueues(dir)
		if err != nil {
			return err
		}
		for i, q := range qs {
			if only != nil && !only(i) {
				continue
			}
			p := filepath.Join(dir, q, "rps_cpus")
			if r.keep && r.old == nil {
				r.old = map[string]string{}
			}
			if _, seen := r.old[q]; r.keep && !seen {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				r.old[q] = strings.TrimSpace(string(b))
			}
			if err := os.WriteFile(p, []byte(mask), 0); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, unix.EACCES):
		// rps_cpus belongs to root (0644): CAP_NET_ADMIN alone is not enough.
		return fmt.Errorf("%s: setting RPS CPUs %s: writing rps_cpus needs root or CAP_DAC_OVERRIDE besides CAP_NET_ADMIN: %w", r.name, mask, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s: setting RPS CPUs %s: /sys is read-only here (a systemd unit's ProtectKernelTunables=yes): %w", r.name, mask, err)
	case err != nil:
		return fmt.Errorf("%s: setting RPS CPUs %s: %w", r.name, mask, err)
	}
	return nil
}

// get returns the rps_cpus mask of each receive queue, in queue order.
func (r *rpsCtl) get() ([]string, error) {
	if r == nil {
		return nil, errors.New("device not open")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	err := r.inSysfs(func(dir string) error {
		qs, err := rxQueues(dir)
		for _, q := range qs {
			b, err := os.ReadFile(filepath.Join(dir, q, "rps_cpus"))
			if err != nil {
				return err
			}
			out = append(out, strings.TrimSpace(string(b)))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading RPS CPUs: %w", r.name, err)
	}
	return out, nil
}

// close puts back the masks an adopted device had before the first set,
// on the queues that still exist (the queues that mflow's own attaching
// added go away as mflow detaches them), and releases the namespace.
func (r *rpsCtl) close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nsFD < 0 {
		return nil
	}
	var err error
	if len(r.old) > 0 {
		err = r.inSysfs(func(dir string) error {
			var errs []error
			for q, m := range r.old {
				if m == "" {
					m = "0"
				}
				err := os.WriteFile(filepath.Join(dir, q, "rps_cpus"), []byte(m), 0)
				if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		})
		if err != nil {
			err = fmt.Errorf("%s: restoring RPS CPUs: %w", r.name, err)
		}
	}
	unix.Close(r.nsFD)
	r.nsFD = -1
	return err
}

// inSysfs runs fn with dir set to the device's queues/ directory in a
// sysfs that shows the device's namespace: the host's /sys when it lists
// this device (same name, index and MAC address), as for a daemon in the
// namespace /sys was mounted for; otherwise a sysfs mounted for the
// device's namespace on a thread of its own, which needs CAP_SYS_ADMIN.
// The caller holds r.mu.
func (r *rpsCtl) inSysfs(fn func(dir string) error) error {
	if r.nsFD < 0 {
		return errors.New("closed")
	}
	if mac, err := r.mac(); err == nil && sysfsShows("/sys", r.name, r.index, mac) {
		return fn(filepath.Join("/sys/class/net", r.name, "queues"))
	}
	err := sysfs.InNetns(r.nsFD, func(root string) error {
		if !sysfsShows(root, r.name, r.index, nil) {
			return fmt.Errorf("%s is no longer interface %d", r.name, r.index)
		}
		return fn(filepath.Join(root, "class/net", r.name, "queues"))
	})
	if errors.Is(err, sysfs.ErrMount) && errors.Is(err, unix.EPERM) {
		return fmt.Errorf("/sys shows another network namespace, and mounting a sysfs for the device's needs CAP_SYS_ADMIN (and a systemd unit without RestrictNamespaces=): %w", err)
	}
	return err
}

// mac returns the device's MAC address now, asked of its namespace.
func (r *rpsCtl) mac() (net.HardwareAddr, error) {
	l, err := r.link()
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// rxDropped returns the device's rx_dropped counter now.
func (r *rpsCtl) rxDropped() (uint64, error) {
	if r == nil {
		return 0, errors.New("device not open")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nsFD < 0 {
		return 0, errors.New("closed")
	}
	l, err := r.link()
	if err != nil {
		return 0, err
	}
	if st := l.Attrs().Statistics; st != nil {
		return st.RxDropped, nil
	}
	return 0, errors.New("no statistics")
}

// link looks the device up in its namespace. The caller holds r.mu.
// From a thread already in that namespace (a daemon serving the namespace
// it runs in) it asks directly: a handle for another namespace enters it,
// which needs CAP_SYS_ADMIN, and a daemon run with only the capabilities
// of examples/mflow.service has none.
func (r *rpsCtl) link() (netlink.Link, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cur, err := netns.Get(); err == nil {
		same := cur.Equal(netns.NsHandle(r.nsFD))
		cur.Close()
		if same {
			return netlink.LinkByIndex(r.index)
		}
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(r.nsFD))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.LinkByIndex(r.index)
}

// sysfsShows reports whether the sysfs at root lists device name with
// index and, unless mac is nil, that MAC address (for a sysfs that may show
// another namespace, where the same name and index can be another device).
func sysfsShows(root, name string, index int, mac net.HardwareAddr) bool {
	dev := filepath.Join(root, "class/net", name)
	b, err := os.ReadFile(filepath.Join(dev, "ifindex"))
	if err != nil {
		return false
	}
	if i, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || i != index {
		return false
	}
	if mac == nil {
		return true
	}
	a, err := os.ReadFile(filepath.Join(dev, "address"))
	return err == nil && strings.TrimSpace(string(a)) == mac.String()
}

// rxQueues lists the rx-N entries of a queues/ directory, in order.
func rxQueues(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var qs []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rx-") {
			qs = append(qs, e.Name())
		}
	}
	if len(qs) == 0 {
		return nil, errors.New("no receive queues")
	}
	slices.SortFunc(qs, func(a, b string) int {
		x, _ := strconv.Atoi(a[3:])
		y, _ := strconv.Atoi(b[3:])
		return x - y
	})
	return qs, nil
}

// SetRPS writes mask, a CPU mask in the hexadecimal form of rps_cpus ("2"
// for CPU 1, "0" for none), to every receive queue of the device, so that
// the kernel hands each frame mflow writes to the backlog of a CPU picked
// from mask by the frame's flow hash: the bridge, the veth and the
// container's stack then run there instead of inside mflow's write(2),
// and a flow keeps one CPU and its order. It may be called from any
// thread. The masks an adopted device had are put back by Close.
func (d *Device) SetRPS(mask string) error {
	if err := d.rps.set(mask, nil); err != nil {
		return fmt.Errorf("tap %w", err)
	}
	return nil
}

// RPS returns the rps_cpus mask of each receive queue, in queue order.
func (d *Device) RPS() ([]string, error) { return d.rps.get() }

func (d *Device) closeRPS() error { return d.rps.close() }

// SetRPS writes mask to the receive queues of the transmit TAP that only
// accepts (all if nil): the kernel then hands each packet mflow writes
// into such a queue (with the redirect to the uplink, its segmentation and
// whatever runs behind the uplink) to the backlog of a CPU picked by its
// outer flow hash, and the write returns. Packets of one outer flow (one
// inner flow) written to one queue keep one CPU and their order.
func (t *Tx) SetRPS(mask string, only func(q int) bool) error {
	if err := t.rps.set(mask, only); err != nil {
		return fmt.Errorf("transmit tap %w", err)
	}
	return nil
}
