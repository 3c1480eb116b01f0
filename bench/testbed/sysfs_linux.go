package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// /sys/class/net lists the devices of the network namespace that was
// current when that sysfs was mounted, not of the reader's namespace. To
// reach a device of another namespace, doSysfs runs fn on a thread that
// enters the namespace, unshares its mount namespace (allowed for one
// thread of a multi-threaded process: it takes a private copy of the
// thread's fs context), makes every mount private, and mounts a fresh sysfs
// on a temporary directory, which shows this namespace's devices. Nothing
// of this is visible outside the thread. The thread is never unlocked, so
// the Go runtime destroys it when fn returns instead of reusing a thread
// that lives in other namespaces.
func (ns *NS) doSysfs(fn func(sysfs string) error) error {
	return onThread(func() (error, bool) {
		// The thread is always discarded: its mount namespace and fs
		// context are its own now.
		return ns.inSysfs(fn), true
	})
}

func (ns *NS) inSysfs(fn func(sysfs string) error) error {
	if err := ns.enter(); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unsharing mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	dir, err := os.MkdirTemp("", "testbed-sysfs-")
	if err != nil {
		return fmt.Errorf("creating sysfs mount point: %w", err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting sysfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return fn(dir)
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
