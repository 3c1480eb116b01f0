package config

import (
	"slices"
	"strings"
	"testing"
)

func TestChanges(t *testing.T) {
	const base = `
uplink: {interface: eth1}
vtep: {address: 192.0.2.1}
networks:
  - vni: 42
    device: {name: mflow42, bridge: br42}
    peers: [192.0.2.2]
  - vni: 43
    device: {name: mflow43}
    peers: [192.0.2.3]
`
	parse := func(t *testing.T, s string) *Config {
		t.Helper()
		c, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse(t, base)
	for _, tc := range []struct {
		name string
		next string
		want []string
	}{
		{"same", base, nil},
		{"defaults spelled out", strings.Replace(base, "{address: 192.0.2.1}", "{address: 192.0.2.1, port: 4789}", 1), nil},
		{"peers", strings.Replace(base, "[192.0.2.3]", "[192.0.2.3, 192.0.2.4]", 1), []string{"networks[1].peers"}},
		{"reordered networks", `
uplink: {interface: eth1}
vtep: {address: 192.0.2.1}
networks:
  - vni: 43
    device: {name: mflow43}
    peers: [192.0.2.9]
  - vni: 42
    device: {name: mflow42, bridge: br42}
    peers: [192.0.2.2]
`, []string{"networks[0].peers"}},
		{"port and workers", strings.Replace(base, "{address: 192.0.2.1}", "{address: 192.0.2.1, port: 8472}\nsteering: {workers: 3}", 1),
			[]string{"vtep.port", "steering.workers"}},
		{"pinning", base + "steering: {workers: 1, cpus: {dispatcher: 0}}\n", []string{"steering.workers", "steering.cpus"}},
		{"queues", strings.Replace(base, "{interface: eth1}", "{interface: eth1, queues: [0]}", 1), []string{"uplink.queues"}},
		{"device", strings.Replace(base, "{name: mflow43}", "{name: mflow43, mtu: 1400}", 1), []string{"networks[1].device.mtu"}},
		{"network added and removed", strings.Replace(base, "vni: 43", "vni: 44", 1), []string{"networks[1]: vni 44 added", "networks: vni 43 removed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := old.Changes(parse(t, tc.next))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Changes: got %q, want %q", got, tc.want)
			}
		})
	}
}
