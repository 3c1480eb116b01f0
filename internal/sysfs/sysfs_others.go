//go:build !linux

package sysfs

import "errors"

var errUnsupported = errors.New("sysfs: Linux only")

// ErrMount marks an error of MountPrivate's own.
var ErrMount = errors.New("private sysfs")

// MountPrivate is Linux-only.
func MountPrivate(func(string) error) error { return errUnsupported }

// OpenNetns is Linux-only.
func OpenNetns() (int, error) { return -1, errUnsupported }

// InNetns is Linux-only.
func InNetns(int, func(string) error) error { return errUnsupported }
