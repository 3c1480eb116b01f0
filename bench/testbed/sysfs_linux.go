package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mflow/internal/sysfs"
)

// doSysfs runs fn with root set to a sysfs that shows ns's devices
// (sysfs.MountPrivate), on a thread that enters ns and is discarded
// afterwards.
func (ns *NS) doSysfs(fn func(sysfs string) error) error {
	return onThread(func() (error, bool) {
		// The thread is always discarded: its mount namespace and fs
		// context are its own now.
		if err := ns.enter(); err != nil {
			return err, true
		}
		return sysfs.MountPrivate(fn), true
	})
}

// setRPS is SetRPS on Linux.
func (ns *NS) setRPS(link string, queue int, mask string) error {
	err := ns.doSysfs(func(sysfs string) error {
		p := filepath.Join(sysfs, "class/net", link, "queues", fmt.Sprintf("rx-%d", queue), "rps_cpus")
		return os.WriteFile(p, []byte(mask), 0o644)
	})
	if err != nil {
		return fmt.Errorf("setting RPS of %s rx-%d in %s: %w", link, queue, ns.Name, err)
	}
	return nil
}

// rps is RPS on Linux.
func (ns *NS) rps(link string, queue int) (string, error) {
	var v string
	err := ns.doSysfs(func(sysfs string) error {
		p := filepath.Join(sysfs, "class/net", link, "queues", fmt.Sprintf("rx-%d", queue), "rps_cpus")
		b, err := os.ReadFile(p)
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading RPS of %s rx-%d in %s: %w", link, queue, ns.Name, err)
	}
	return v, nil
}
