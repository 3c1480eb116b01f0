package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"mflow/config"
)

// reloadable matches the paths of config.Changes that reload applies.
var reloadable = regexp.MustCompile(`^networks\[\d+\]\.(peers|fdb)$`)

// staticEntries is a network's configured FDB as the encap loops read it.
func staticEntries(n config.Network) map[[6]byte][4]byte {
	m := make(map[[6]byte][4]byte, len(n.FDB))
	for _, e := range n.FDB {
		m[e.HardwareAddr()] = e.Addr().As4()
	}
	return m
}

// reload is Reload on Linux.
func (d *daemon) reload(cfg *config.Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.down.Load() || d.neigh == nil {
		return nil, errors.New("reload: the daemon has stopped")
	}
	changes := d.live.Changes(cfg)
	var refused []string
	for _, c := range changes {
		if !reloadable.MatchString(c) {
			refused = append(refused, c)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotReloadable, strings.Join(refused, ", "))
	}
	for _, n := range cfg.Networks {
		nw := d.byVNI[n.VNI24()] // the same VNIs: anything else was refused
		if next := staticEntries(n); !maps.Equal(next, *nw.static.Load()) {
			nw.setStatic(next)
			d.log.Info("static FDB entries changed", "vni", nw.vni, "device", nw.device, "entries", len(next))
		}
		old := nw.flood
		flood := nw.setPeers(n.PeerAddrs())
		if slices.Equal(old, flood) {
			continue
		}
		d.fdb.SetFlood(nw.vni, flood)
		var added, removed []string
		for _, p := range flood {
			if !slices.Contains(old, p) {
				added = append(added, netip.AddrFrom4(p).String())
				d.neigh.want(p) // resolved in the background
			}
		}
		for _, p := range old {
			if !slices.Contains(flood, p) {
				removed = append(removed, netip.AddrFrom4(p).String())
			}
		}
		d.log.Info("peers changed", "vni", nw.vni, "device", nw.device,
			"added", strings.Join(added, ","), "removed", strings.Join(removed, ","))
	}
	d.live = cfg
	return changes, nil
}
