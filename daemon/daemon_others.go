//go:build !linux

package daemon

import (
	"context"
	"errors"

	"mflow/config"
	"mflow/metrics"
)

// ErrUnsupported is returned outside Linux: mflow needs XDP, AF_XDP and TAP.
var ErrUnsupported = errors.New("daemon: needs Linux (XDP, AF_XDP, TAP)")

// Daemon is a configured VTEP; outside Linux none can be made.
type Daemon struct{}

// New returns ErrUnsupported outside Linux.
func New(cfg *config.Config, o Options) (*Daemon, error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported outside Linux.
func (d *Daemon) Run(ctx context.Context) error { return ErrUnsupported }

// Close does nothing outside Linux.
func (d *Daemon) Close() {}

// Snapshot returns an empty snapshot outside Linux.
func (d *Daemon) Snapshot() metrics.Snapshot { return metrics.Snapshot{} }

// CheckHost reports that the platform is unsupported.
func CheckHost(cfg *config.Config) []Check {
	return []Check{{Name: "platform", Detail: ErrUnsupported.Error()}}
}

// InNamedNetns returns ErrUnsupported outside Linux.
func InNamedNetns(name string) (func(func() error) error, error) { return nil, ErrUnsupported }
