package config

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse asserts that Parse never panics, that every error wraps
// ErrInvalid, and that an accepted configuration validates and survives a
// round trip through Effective.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("uplink: {interface: e}\nvtep: {address: 192.0.2.1}\nnetworks: [{vni: 1, device: {name: t}, peers: [192.0.2.2]}]\n"))
	f.Add([]byte("uplink: {queues: [1, 2]}\n"))
	f.Add([]byte("- [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		for _, n := range c.Networks {
			if n.VNI < 0 || n.VNI > MaxVNI {
				t.Fatalf("accepted VNI %d", n.VNI)
			}
		}
		c2, err := Parse([]byte(c.Effective()))
		if err != nil {
			t.Fatalf("Parse(Effective()) = %v\n%s", err, c.Effective())
		}
		c.root, c2.root = nil, nil
		// Effective prints the effective value of the keys whose default
		// depends on others: compare those values.
		for _, x := range []*Config{c, c2} {
			x.VTEP.UDPChecksum, x.Steering.Inline = ptr(x.VTEP.OuterUDPChecksum()), ptr(x.Steering.InlineFrames())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", c, c2)
		}
	})
}
