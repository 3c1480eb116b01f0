package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNS is NewNS on Linux.
func newNS(prefix string) (*NS, error) {
	if err := prepareNetnsDir(); err != nil {
		return nil, err
	}
	var (
		name string
		path string
		f    *os.File
		err  error
	)
	for range 10 {
		name = prefix + "-" + randomSuffix(6)
		path = filepath.Join(NetnsDir, name)
		f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating namespace file %s: %w", path, err)
	}
	f.Close()

	ns := &NS{Name: name, fd: -1}
	err = onNewThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unsharing network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting namespace on %s: %w", path, err)
		}
		fd, err := netns.GetFromPath(path)
		if err != nil {
			return fmt.Errorf("opening namespace %s: %w", path, err)
		}
		ns.fd = fd
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("opening netlink handle: %w", err)
		}
		ns.nl = h
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("finding lo: %w", err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("setting lo up: %w", err)
		}
		return nil
	})
	if err != nil {
		_ = ns.Close()
		_ = os.Remove(path) // in case the mount never happened
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return ns, nil
}

// prepareNetnsDir creates /run/netns and makes it a shared mount point, as
// `ip netns add` does.
func prepareNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", NetnsDir, err)
	}
	err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it on itself, then retry.
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s: %w", NetnsDir, err)
		}
		err = unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("making %s a shared mount: %w", NetnsDir, err)
	}
	return nil
}

// onNewThread runs fn on a new goroutine locked to its OS thread and waits
// for it. fn may change the thread's network namespace: afterwards the
// thread is switched back to the namespace it started in; if that fails the
// goroutine exits still locked, and the runtime destroys the thread. A panic
// in fn is re-raised in the caller's goroutine.
func onNewThread(fn func() error) error {
	return onThread(func() (error, bool) {
		orig, err := netns.Get()
		if err != nil {
			// Cannot restore later: discard the thread.
			return fmt.Errorf("opening current namespace: %w", err), true
		}
		defer orig.Close()
		var r error
		var p any
		func() {
			defer func() { p = recover() }()
			r = fn()
		}()
		if err := netns.Set(orig); err != nil {
			r = errors.Join(r, fmt.Errorf("restoring network namespace: %w", err))
			if p != nil {
				panic(p)
			}
			return r, true
		}
		if p != nil {
			panic(p)
		}
		return r, false
	})
}

// onThread runs fn on a new goroutine locked to an OS thread other than the
// process's main thread, waits for it and returns its error. If fn reports
// discard (or panics), the goroutine exits still locked and the runtime
// destroys the thread; otherwise the thread is unlocked for reuse. A panic
// in fn is re-raised in the caller's goroutine.
//
// The main thread is avoided because the runtime never destroys it: a
// locked goroutine exiting on it leaves it parked forever, still in whatever
// namespace fn left it, keeping that namespace alive.
func onThread(fn func() (err error, discard bool)) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Hold the main thread so that the nested goroutine, which is
			// locked elsewhere, cannot be scheduled on it.
			var r result
			func() {
				defer func() { r.panic = recover() }()
				r.err = onThread(fn)
			}()
			runtime.UnlockOSThread()
			done <- r
			return
		}
		var r result
		discard := true
		func() {
			defer func() { r.panic = recover() }()
			r.err, discard = fn()
		}()
		if !discard && r.panic == nil {
			runtime.UnlockOSThread()
		}
		done <- r
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// do is Do on Linux.
func (ns *NS) do(fn func() error) error {
	return onNewThread(func() error {
		if err := ns.enter(); err != nil {
			return err
		}
		return fn()
	})
}

// enter switches the calling (locked) thread into the namespace.
func (ns *NS) enter() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return fmt.Errorf("entering namespace %s: %w", ns.Name, ErrClosed)
	}
	if err := netns.Set(ns.fd); err != nil {
		return fmt.Errorf("entering namespace %s: %w", ns.Name, err)
	}
	return nil
}

// close is Close on Linux.
func (ns *NS) close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return nil
	}
	ns.closed = true
	if ns.nl != nil {
		ns.nl.Close()
		ns.nl = nil
	}
	if ns.fd >= 0 {
		ns.fd.Close()
		ns.fd = -1
	}
	path := ns.Path()
	var errs []error
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmounting %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing %s: %w", path, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("deleting namespace %s: %w", ns.Name, errors.Join(errs...))
	}
	return nil
}
