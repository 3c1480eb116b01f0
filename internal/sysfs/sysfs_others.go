//go:build !linux

package sysfs

import "errors"

var errUnsupported = errors.New("sysfs: Linux only")

// MountPrivate is Linux-only.
func MountPrivate(func(string) error) error { return errUnsupported }

// OpenNetns is Linux-only.
func OpenNetns() (int, error) { return -1, errUnsupported }

// InNetns is Linux-only.
func InNetns(int, func(string) error) error { return errUnsupported }
