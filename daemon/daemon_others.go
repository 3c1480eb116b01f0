//go:build !linux

package daemon

import (
	"context"
	"errors"

	"mflow/bpf"
	"mflow/config"
	"mflow/metrics"
)

// errUnsupported is returned outside Linux: mflow needs XDP, AF_XDP and TAP.
var errUnsupported = errors.New("daemon: needs Linux (XDP, AF_XDP, TAP)")

type daemon struct{ xdpMode bpf.Mode }

func newDaemon(*config.Config, Options) (*daemon, error) { return nil, errUnsupported }

func (d *daemon) run(context.Context) error { return errUnsupported }

func (d *daemon) teardown() {}

func (d *daemon) alive() error { return errUnsupported }

func (d *daemon) ready() error { return errUnsupported }

func (d *daemon) reload(*config.Config) ([]string, error) { return nil, errUnsupported }

func (d *daemon) snapshot() metrics.Snapshot { return metrics.Snapshot{} }

func (d *daemon) xdpCounters() (bpf.Counters, error) { return bpf.Counters{}, errUnsupported }

func checkHost(*config.Config) []Check {
	return []Check{{Name: "platform", Detail: errUnsupported.Error()}}
}

func inNamedNetns(string) (func(func() error) error, error) { return nil, errUnsupported }
