package testbed

import (
	"fmt"

	"golang.org/x/sys/unix"

	"mflow/internal/ethtool"
)

// offload is one field of Offloads and its legacy ethtool commands.
type offload struct {
	what     string
	get, set uint32
	on       *bool
}

// offloads returns the fields of o with their commands.
func offloads(o *Offloads) []offload {
	return []offload{
		{"TSO", unix.ETHTOOL_GTSO, unix.ETHTOOL_STSO, &o.TSO},
		{"GSO", unix.ETHTOOL_GGSO, unix.ETHTOOL_SGSO, &o.GSO},
		{"GRO", unix.ETHTOOL_GGRO, unix.ETHTOOL_SGRO, &o.GRO},
		{"TX checksumming", unix.ETHTOOL_GTXCSUM, unix.ETHTOOL_STXCSUM, &o.TxCsum},
	}
}

// withEthtool runs fn with an ethtool socket opened inside the namespace.
func (ns *NS) withEthtool(fn func(s *ethtool.Socket) error) error {
	return ns.Do(func() error {
		s, err := ethtool.Open()
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(s)
	})
}

// setOffloads is SetOffloads on Linux.
func (ns *NS) setOffloads(name string, o Offloads) error {
	err := ns.withEthtool(func(s *ethtool.Socket) error {
		for _, f := range offloads(&o) {
			if err := s.Set(name, f.set, *f.on); err != nil {
				return fmt.Errorf("setting %s: %w", f.what, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("setting offloads of %s in %s: %w", name, ns.Name, err)
	}
	return nil
}

// getOffloads is GetOffloads on Linux.
func (ns *NS) getOffloads(name string) (Offloads, error) {
	var o Offloads
	err := ns.withEthtool(func(s *ethtool.Socket) error {
		for _, f := range offloads(&o) {
			on, err := s.Get(name, f.get)
			if err != nil {
				return fmt.Errorf("reading %s: %w", f.what, err)
			}
			*f.on = on
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("reading offloads of %s in %s: %w", name, ns.Name, err)
	}
	return o, nil
}
