// Package sysfs reaches /sys/class/net of a given network namespace.
//
// A sysfs shows the network devices of the namespace that was current when
// it was mounted, not of the reader's: the host's /sys, read by a thread
// that entered another namespace, lists the host's devices. The functions
// here mount a fresh sysfs, visible only to one OS thread, so that it
// shows that thread's namespace.
package sysfs

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrMount marks an error of MountPrivate's own (unsharing the mount
// namespace, mounting), as opposed to one of fn.
var ErrMount = errors.New("private sysfs")

// MountPrivate runs fn with root set to a sysfs that shows the calling
// thread's network namespace. It unshares the thread's mount namespace
// (allowed for one thread of a multi-threaded process: the thread gets a
// private copy of its fs context), makes every mount private and mounts
// sysfs on a temporary directory; none of this is visible outside the
// thread. The caller must have locked the goroutine to its thread and
// must never unlock it afterwards, so that the Go runtime destroys the
// thread instead of reusing one with a mount namespace of its own.
func MountPrivate(fn func(root string) error) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("%w: unsharing mount namespace: %w", ErrMount, err)
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("%w: making mounts private: %w", ErrMount, err)
	}
	dir, err := os.MkdirTemp("", "mflow-sysfs-")
	if err != nil {
		return fmt.Errorf("%w: creating sysfs mount point: %w", ErrMount, err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("%w: mounting sysfs: %w", ErrMount, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return fn(dir)
}

// OpenNetns returns a file descriptor of the calling thread's network
// namespace, for InNetns.
func OpenNetns() (int, error) {
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening network namespace: %w", err)
	}
	return fd, nil
}

// InNetns runs fn, on a new OS thread that enters the network namespace
// nsFD, with root set to a sysfs that shows that namespace's devices
// (MountPrivate). The thread is discarded afterwards; the caller's thread
// is not touched. The process's main thread is never used: the runtime
// cannot discard it, so it would stay in the namespace (and
// /proc/PID/ns/net would name that namespace for the whole process).
func InNetns(nsFD int, fn func(root string) error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked below: the thread exits with the goroutine
		if unix.Gettid() == unix.Getpid() {
			// The main thread: hold it, so that the nested goroutine runs
			// on another one, and give it back unchanged.
			err := InNetns(nsFD, fn)
			runtime.UnlockOSThread()
			done <- err
			return
		}
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		done <- MountPrivate(fn)
	}()
	return <-done
}
