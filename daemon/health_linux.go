package daemon

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
)

// alive is Live on Linux.
func (d *daemon) alive() error {
	if d.down.Load() {
		return errors.New("mflow has shut down")
	}
	return nil
}

// ready is Ready on Linux.
func (d *daemon) ready() error {
	if !d.serving.Load() {
		return errors.New("not serving: starting or stopping")
	}
	var problems []string
	if len(d.socks) != len(d.queues) || len(d.socks) == 0 {
		problems = append(problems, fmt.Sprintf("%d AF_XDP sockets bound for %d queues", len(d.socks), len(d.queues)))
	}
	err := d.enter(func() error {
		l, err := netlink.LinkByIndex(d.uplinkIndex)
		if err != nil {
			problems = append(problems, fmt.Sprintf("uplink %s: %v", d.uplinkName, err))
		} else if x := l.Attrs().Xdp; x == nil || !x.Attached {
			problems = append(problems, "no XDP program attached to "+d.uplinkName)
		}
		for _, dev := range d.devs {
			l, err := netlink.LinkByName(dev.Name())
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("device %s: %v", dev.Name(), err))
			case l.Attrs().Flags&net.FlagUp == 0:
				problems = append(problems, "device "+dev.Name()+" is down")
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	if len(problems) > 0 {
		return errors.New("not ready: " + strings.Join(problems, "; "))
	}
	return nil
}
