package daemon

import (
	"errors"
	"testing"

	"mflow/config"
)

// TestNewRejectsVeth: a device type the daemon cannot serve is a config
// error, found before anything is set up (no root needed).
func TestNewRejectsVeth(t *testing.T) {
	cfg, err := config.Parse([]byte(`
uplink: {interface: uplink0}
vtep: {address: 192.0.2.1}
networks:
  - vni: 42
    device: {type: veth, name: v42}
    peers: [192.0.2.2]
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with a veth device: %v, want ErrConfig", err)
	}
}
