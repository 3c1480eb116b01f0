package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"mflow/config"
	"mflow/tap"
)

// reloadable matches the paths of config.Changes that reload applies.
var reloadable = regexp.MustCompile(`^networks\[\d+\]\.(peers|fdb|device\.bridge)$`)

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
		if !reloadable.MatchString(c) || strings.HasSuffix(c, ".device.bridge") && !d.tapNetwork(cfg, c) {
			refused = append(refused, c)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotReloadable, strings.Join(refused, ", "))
	}
	// Bridges first: the one change that can fail, before anything else
	// is applied.
	if err := d.moveBridges(cfg); err != nil {
		return nil, err
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

// tapNetwork reports whether the network of a change's path
// ("networks[i]...", i in cfg) has a TAP: a veth's bridge is its peer's,
// which mflow set up at start and does not move.
func (d *daemon) tapNetwork(cfg *config.Config, path string) bool {
	var i int
	if _, err := fmt.Sscanf(path, "networks[%d]", &i); err != nil || i < 0 || i >= len(cfg.Networks) {
		return false
	}
	nw := d.byVNI[cfg.Networks[i].VNI24()]
	_, ok := d.devs[nw.index].(*tap.Device)
	return ok && cfg.Networks[i].Device.Type == config.DeviceTAP
}

// moveBridges puts each TAP whose bridge changed on its new bridge (or on
// none). A bridge that does not exist fails the reload; TAPs already moved
// are put back.
func (d *daemon) moveBridges(cfg *config.Config) error {
	type move struct {
		nw       *network
		from, to string
	}
	var moves []move
	for _, n := range cfg.Networks {
		nw := d.byVNI[n.VNI24()]
		if _, ok := d.devs[nw.index].(*tap.Device); ok && nw.bridge != n.Device.Bridge {
			moves = append(moves, move{nw, nw.bridge, n.Device.Bridge})
		}
	}
	setMaster := func(dev, bridge string) error {
		return d.enter(func() error {
			l, err := netlink.LinkByName(dev)
			if err != nil {
				return err
			}
			if bridge == "" {
				return netlink.LinkSetNoMaster(l)
			}
			br, err := netlink.LinkByName(bridge)
			if err != nil {
				return fmt.Errorf("bridge %s: %w", bridge, err)
			}
			if _, ok := br.(*netlink.Bridge); !ok {
				return fmt.Errorf("%s is a %s device, not a bridge", bridge, br.Type())
			}
			return netlink.LinkSetMaster(l, br)
		})
	}
	for k, m := range moves {
		if err := setMaster(m.nw.device, m.to); err != nil {
			for _, back := range moves[:k] {
				setMaster(back.nw.device, back.from)
				back.nw.bridge = back.from
			}
			return fmt.Errorf("%w: move %s to bridge %q: %w", ErrConfig, m.nw.device, m.to, err)
		}
		m.nw.bridge = m.to
		m.nw.bridgeGone = false
		d.log.Info("TAP moved to another bridge", "device", m.nw.device, "vni", m.nw.vni, "from", m.from, "to", m.to)
	}
	return nil
}
