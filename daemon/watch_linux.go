package daemon

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"

	"mflow/config"
	"mflow/tap"
)

// watchLinks subscribes to link notifications in the served namespace; each
// one only prompts checkDevices. The channel is closed when the
// subscription fails (an overrun, for instance); the periodic check goes
// on without it and subscribes again. stop ends the subscription and
// drains the channel until it is closed.
func (d *daemon) watchLinks() (updates <-chan netlink.LinkUpdate, stop func(), err error) {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var stopped atomic.Bool
	err = d.enter(func() error {
		return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			ErrorCallback: func(err error) {
				if !stopped.Load() {
					d.log.Warn("link notifications lost; devices are still checked every 10 s", "err", err)
				}
			},
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to link notifications: %w", err)
	}
	return ch, func() {
		stopped.Store(true)
		close(done)
		go func() { // the subscription's goroutine must not block on a full channel
			for range ch {
			}
		}()
	}, nil
}

// checkDevices looks at every network's TAP (docs/OPERATIONS.md §4):
//
//   - a TAP deleted from outside cannot be served any more (its file
//     descriptor is dead); checkDevices returns an error wrapping
//     ErrDeviceLost, on which Run shuts down and fails, so that the
//     service manager restarts mflow, which creates the TAP again;
//   - a TAP whose bridge is gone is logged once (the network is cut off);
//     when a bridge of that name exists again, the TAP is put back on it
//     (logged).
//
// A veth deleted from outside is left to its transmit path (its frames
// are counted as veth_tx_error; see docs/OPERATIONS.md §5).
func (d *daemon) checkDevices() error {
	d.reloadMu.Lock() // the bridges in force
	defer d.reloadMu.Unlock()
	return d.enter(func() error {
		if tx := d.tunTx; tx != nil {
			l, err := netlink.LinkByIndex(tx.Index())
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) || err == nil && l.Attrs().Name != tx.Name() {
				return fmt.Errorf("%w: the transmit TAP %s was deleted from outside mflow; exiting so that the service manager restarts mflow, which creates it again",
					ErrDeviceLost, tx.Name())
			}
		}
		for i, n := range d.cfg.Networks {
			t, ok := d.devs[i].(*tap.Device)
			if !ok || n.Device.Type != config.DeviceTAP {
				continue
			}
			nw := d.nets[i]
			bridge := nw.bridge
			l, err := netlink.LinkByIndex(t.Index())
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) || err == nil && l.Attrs().Name != t.Name() {
				return fmt.Errorf("%w: TAP %s (VNI %d) was deleted from outside mflow; exiting so that the service manager restarts mflow, which creates it again",
					ErrDeviceLost, t.Name(), n.VNI)
			}
			if err != nil || bridge == "" {
				continue
			}
			br, err := netlink.LinkByName(bridge)
			if err != nil {
				if !nw.bridgeGone {
					nw.bridgeGone = true
					d.log.Error("bridge gone: the network is cut off until a bridge of that name exists again", "bridge", bridge, "device", t.Name(), "vni", n.VNI)
				}
				continue
			}
			if l.Attrs().MasterIndex == br.Attrs().Index {
				nw.bridgeGone = false
				continue
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				d.log.Error("rejoining bridge failed", "bridge", bridge, "device", t.Name(), "err", err)
				continue
			}
			nw.bridgeGone = false
			d.log.Warn("TAP put back on its bridge", "bridge", bridge, "device", t.Name(), "vni", n.VNI)
		}
		return nil
	})
}
