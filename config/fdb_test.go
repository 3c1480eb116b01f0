package config

import (
	"strings"
	"testing"
)

func TestStaticFDB(t *testing.T) {
	const head = `
uplink: {interface: eth1}
vtep: {address: 192.0.2.1}
networks:
  - vni: 42
    device: {name: mflow42}
    peers: [192.0.2.2, 192.0.2.3]
`
	c, err := Parse([]byte(head + "    fdb: [{mac: \"02:42:0a:2a:00:05\", vtep: 192.0.2.3}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Networks[0].FDB[0]
	if e.HardwareAddr() != [6]byte{2, 0x42, 10, 42, 0, 5} || e.Addr().String() != "192.0.2.3" {
		t.Errorf("entry %+v: %v %v", e, e.HardwareAddr(), e.Addr())
	}
	if !strings.Contains(c.Effective(), "fdb:") {
		t.Errorf("effective configuration lacks the entry:\n%s", c.Effective())
	}
	for _, tc := range []struct{ fdb, want string }{
		{`[{mac: "02:42:0a:2a:00:05", vtep: 192.0.2.9}]`, "line 8: networks[0].fdb[0].vtep: 192.0.2.9 is not one of networks[0].peers"},
		{`[{mac: "nope", vtep: 192.0.2.2}]`, `networks[0].fdb[0].mac: "nope" is not a 6-byte MAC address`},
		{`[{mac: "01:00:5e:00:00:01", vtep: 192.0.2.2}]`, "networks[0].fdb[0].mac: 01:00:5e:00:00:01 is a multicast address"},
		{`[{mac: "02:00:00:00:00:01", vtep: 192.0.2.2}, {mac: "02:00:00:00:00:01", vtep: 192.0.2.3}]`, "networks[0].fdb[1].mac: 02:00:00:00:00:01 is also listed as networks[0].fdb[0]"},
		{`[{mac: "02:00:00:00:00:01", vtep: 192.0.2.2, via: x}]`, `unknown key "via"`},
	} {
		_, err := Parse([]byte(head + "    fdb: " + tc.fdb + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fdb %s: %v; want %q", tc.fdb, err, tc.want)
		}
	}
}
