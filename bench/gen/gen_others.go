//go:build !linux

package gen

import (
	"context"
	"io"
)

// Run is unsupported outside Linux.
func Run(ctx context.Context, ns Namespace, ifname string, frame []byte, o Options) (Stats, error) {
	return Stats{}, ErrUnsupported
}

// AttachPass is unsupported outside Linux.
func AttachPass(ns Namespace, ifname string) (io.Closer, error) { return nil, ErrUnsupported }

// AttachDrop is unsupported outside Linux.
func AttachDrop(ns Namespace, ifname string) (io.Closer, error) { return nil, ErrUnsupported }
