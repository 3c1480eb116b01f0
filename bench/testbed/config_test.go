package testbed_test

import (
	"testing"

	"mflow/bench/testbed"
	"mflow/config"
)

// TestMflowConfig checks that the daemon configurations the tests and the
// harness start from parse, with the extra vtep keys where given (and the
// default transmit_rps where not).
func TestMflowConfig(t *testing.T) {
	for _, tc := range []struct {
		name, device, rps string
		yaml              []byte
	}{
		{name: "tap", device: "tap", rps: config.RPSAuto, yaml: testbed.MflowConfig("policy: single")},
		{name: "veth", device: "veth", rps: config.RPSAuto, yaml: testbed.MflowConfigDevice("veth", "policy: microflow, workers: 2")},
		{name: "vtep keys", device: "tap", rps: config.RPSOff, yaml: testbed.MflowConfigVTEP("tap", `transmit_rps: "off"`, "policy: single")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse(tc.yaml)
			if err != nil {
				t.Fatalf("%v\n%s", err, tc.yaml)
			}
			if len(c.Networks) != 1 || string(c.Networks[0].Device.Type) != tc.device {
				t.Errorf("networks %+v, want one %s", c.Networks, tc.device)
			}
			if c.VTEP.Address != testbed.HostUnderlayIP.String() || c.VTEP.Port != testbed.VxLANPort || c.VTEP.TransmitRPS != tc.rps {
				t.Errorf("vtep %+v, want %s:%d with transmit_rps %q", c.VTEP, testbed.HostUnderlayIP, testbed.VxLANPort, tc.rps)
			}
		})
	}
}
