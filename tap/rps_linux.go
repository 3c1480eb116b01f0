package tap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mflow/internal/sysfs"
)

// SetRPS writes mask, a CPU mask in the hexadecimal form of rps_cpus
// ("2" for CPU 1, "0" for none), to every receive queue of the device
// (queues/rx-N/rps_cpus), so that the kernel hands each frame mflow writes
// to the backlog of a CPU picked from mask by the frame's flow hash: the
// bridge, the veth and the container's stack then run there instead of
// inside mflow's write(2), and a flow keeps one CPU and its order. The
// calling thread must be in the device's network namespace (as for Open).
// The masks an adopted device had are put back by Close.
func (d *Device) SetRPS(mask string) error {
	if d.nsFD < 0 {
		fd, err := sysfs.OpenNetns()
		if err != nil {
			return fmt.Errorf("tap %s: RPS: %w", d.name, err)
		}
		d.nsFD = fd
	}
	err := d.inSysfs(func(dir string) error {
		qs, err := rxQueues(dir)
		if err != nil {
			return err
		}
		for _, q := range qs {
			p := filepath.Join(dir, q, "rps_cpus")
			if d.adopted && d.rpsOld == nil {
				d.rpsOld = map[string]string{}
			}
			if _, seen := d.rpsOld[q]; d.adopted && !seen {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				d.rpsOld[q] = strings.TrimSpace(string(b))
			}
			if err := os.WriteFile(p, []byte(mask), 0); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if errors.Is(err, unix.EACCES) {
		// rps_cpus belongs to root (0644): CAP_NET_ADMIN alone is not enough.
		return fmt.Errorf("tap %s: setting RPS CPUs %s: writing rps_cpus needs root or CAP_DAC_OVERRIDE besides CAP_NET_ADMIN: %w", d.name, mask, err)
	}
	if err != nil {
		return fmt.Errorf("tap %s: setting RPS CPUs %s: %w", d.name, mask, err)
	}
	return nil
}

// RPS returns the rps_cpus mask of each receive queue, in queue order.
func (d *Device) RPS() ([]string, error) {
	if d.nsFD < 0 {
		fd, err := sysfs.OpenNetns()
		if err != nil {
			return nil, fmt.Errorf("tap %s: RPS: %w", d.name, err)
		}
		d.nsFD = fd
	}
	var out []string
	err := d.inSysfs(func(dir string) error {
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
		return nil, fmt.Errorf("tap %s: reading RPS CPUs: %w", d.name, err)
	}
	return out, nil
}

// inSysfs runs fn with dir set to the device's queues/ directory in a
// sysfs that shows the device's namespace: the host's /sys when it lists
// this device (same name, index and MAC address), as for a daemon in the
// namespace /sys was mounted for; otherwise a sysfs mounted for the
// device's namespace on a thread of its own, which needs CAP_SYS_ADMIN.
func (d *Device) inSysfs(fn func(dir string) error) error {
	if d.sysfsShows("/sys", true) {
		return fn(filepath.Join("/sys/class/net", d.name, "queues"))
	}
	err := sysfs.InNetns(d.nsFD, func(root string) error {
		if !d.sysfsShows(root, false) {
			return fmt.Errorf("%s is no longer interface %d", d.name, d.index)
		}
		return fn(filepath.Join(root, "class/net", d.name, "queues"))
	})
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("/sys shows another network namespace, and mounting a sysfs for the TAP's needs CAP_SYS_ADMIN: %w", err)
	}
	return err
}

// sysfsShows reports whether the sysfs at root lists this device: its
// name with its index and, with mac set, its MAC address (for a sysfs that
// may show another namespace, where the same name and index can be
// another device).
func (d *Device) sysfsShows(root string, mac bool) bool {
	dev := filepath.Join(root, "class/net", d.name)
	b, err := os.ReadFile(filepath.Join(dev, "ifindex"))
	if err != nil {
		return false
	}
	if i, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || i != d.index {
		return false
	}
	if !mac {
		return true
	}
	a, err := os.ReadFile(filepath.Join(dev, "address"))
	return err == nil && strings.TrimSpace(string(a)) == d.mac.String()
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

// closeRPS puts back the masks an adopted device had before SetRPS and
// releases the namespace handle. A device mflow created disappears with
// its masks.
func (d *Device) closeRPS() error {
	if d.nsFD < 0 {
		return nil
	}
	var err error
	if len(d.rpsOld) > 0 {
		err = d.inSysfs(func(dir string) error {
			var errs []error
			for q, m := range d.rpsOld {
				if m == "" {
					m = "0"
				}
				errs = append(errs, os.WriteFile(filepath.Join(dir, q, "rps_cpus"), []byte(m), 0))
			}
			return errors.Join(errs...)
		})
		if err != nil {
			err = fmt.Errorf("tap %s: restoring RPS CPUs: %w", d.name, err)
		}
	}
	unix.Close(d.nsFD)
	d.nsFD = -1
	return err
}
