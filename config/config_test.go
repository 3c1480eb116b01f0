package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// base is a valid configuration; the tests edit one line of it. Line
// numbers matter: the table below refers to them.
const base = `uplink:
  interface: eth1
  queues: all
  xdp_mode: auto
vtep:
  address: 192.0.2.1
  port: 4789
networks:
  - vni: 42
    device: {type: tap, name: mflow42, bridge: br42, mtu: 1450}
    peers: [192.0.2.2]
  - vni: 43
    device: {type: tap, name: mflow43, mtu: 1400}
    peers: [192.0.2.2, 192.0.2.3]
steering:
  policy: microflow
  batch: 256
  workers: 2
metrics:
  listen: 127.0.0.1:9469
`

// edit replaces line n (1-based) of base with repl ("" deletes it).
func edit(t *testing.T, n int, repl string) string {
	t.Helper()
	lines := strings.Split(base, "\n")
	if n < 1 || n > len(lines) {
		t.Fatalf("line %d out of range", n)
	}
	if repl == "" {
		lines = append(lines[:n-1], lines[n:]...)
	} else {
		lines[n-1] = repl
	}
	return strings.Join(lines, "\n")
}

func TestParseBase(t *testing.T) {
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatalf("Parse(base): %v", err)
	}
	if got, want := c.Networks[1].VNI24(), uint32(43); got != want {
		t.Errorf("networks[1].vni = %d, want %d", got, want)
	}
	if got, want := c.Networks[1].Device.Bridge, ""; got != want {
		t.Errorf("networks[1].device.bridge = %q, want %q", got, want)
	}
	if got, want := c.VTEP.Addr().String(), "192.0.2.1"; got != want {
		t.Errorf("vtep address = %s, want %s", got, want)
	}
	if got := c.Networks[1].PeerAddrs(); len(got) != 2 || got[1].String() != "192.0.2.3" {
		t.Errorf("networks[1] peers = %v, want [192.0.2.2 192.0.2.3]", got)
	}
}

func TestDefaults(t *testing.T) {
	const minimal = `uplink: {interface: eth1}
vtep: {address: 192.0.2.1}
networks:
  - vni: 7
    device: {name: tap7}
    peers: [192.0.2.9]
`
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Uplink.Interface = "eth1"
	want.VTEP.Address = "192.0.2.1"
	want.Networks = []Network{{VNI: 7, Device: Device{Type: DeviceTAP, Name: "tap7", MTU: 1450, QueueLen: 8192}, Peers: []string{"192.0.2.9"}}}
	c.root = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\ngot  %+v\nwant %+v", c, want)
	}
	for _, s := range []string{"port: 4789", "xdp_mode: auto", "queues: all", "policy: microflow", "batch: 256",
		"workers: 2", "listen: 127.0.0.1:9469", "reserved_bits: ignore", "partial_checksum: accept", "max_learned: 4096", "learn_rate: 1000", "mtu: 1450", "type: tap", "level: info",
		"source_ports: 49152-65535", "transmit: auto", "spin_us: 500", "inline: 16", "transmit_rps: auto", "tap_rps: \"off\"", "rx_ring: 8192", "queue_len: 8192"} {
		if !strings.Contains(c.Effective(), s) {
			t.Errorf("Effective() lacks %q:\n%s", s, c.Effective())
		}
	}
}

// TestEffectiveRoundTrip checks that the effective configuration parses
// back to the same configuration.
// TestSourcePortRange: the range parses with spaces around its numbers.
func TestSourcePortRange(t *testing.T) {
	for s, want := range map[string][2]uint16{"49152-65535": {49152, 65535}, " 1000 - 1000 ": {1000, 1000}, "1-65535": {1, 65535}} {
		lo, hi, ok := VTEP{SourcePorts: s}.SourcePortRange()
		if !ok || lo != want[0] || hi != want[1] {
			t.Errorf("%q: %d-%d %v", s, lo, hi, ok)
		}
	}
	for _, s := range []string{"", "1000", "2-1", "0-5", "5-70000", "a-b"} {
		if _, _, ok := (VTEP{SourcePorts: s}).SourcePortRange(); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestEffectiveRoundTrip(t *testing.T) {
	c, err := Parse([]byte(edit(t, 3, "  queues: [0, 2]")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c2, err := Parse([]byte(c.Effective()))
	if err != nil {
		t.Fatalf("Parse(Effective()): %v\n%s", err, c.Effective())
	}
	c.root, c2.root = nil, nil
	// Effective prints the effective value of the keys whose default
	// depends on others (unset in c, set in c2): compare those values.
	for _, x := range []*Config{c, c2} {
		x.VTEP.UDPChecksum, x.Steering.Inline = ptr(x.VTEP.OuterUDPChecksum()), ptr(x.Steering.InlineFrames())
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\ngot  %+v\nwant %+v", c2, c)
	}
	if !reflect.DeepEqual(c.Uplink.Queues.List, []int{0, 2}) {
		t.Errorf("queues = %+v, want [0 2]", c.Uplink.Queues)
	}
}

func TestOuterUDPChecksum(t *testing.T) {
	for _, tt := range []struct {
		extra string
		want  bool
	}{
		{"", false},                     // auto: as the tunnel path (the socket path sends one regardless)
		{"\n  transmit: socket", true},  // the kernel's UDP GSO sends one
		{"\n  transmit: tunnel", false}, // as the kernel's VxLAN (noudpcsum)
		{"\n  transmit: af_xdp", false}, // as the kernel's VxLAN (noudpcsum)
		{"\n  transmit: af_xdp\n  udp_checksum: true", true},
		{"\n  transmit: af_xdp\n  udp_checksum: false", false},
		{"\n  udp_checksum: true", true},
	} {
		c, err := Parse([]byte(edit(t, 7, "  port: 4789"+tt.extra)))
		if err != nil {
			t.Fatalf("%q: %v", tt.extra, err)
		}
		if got := c.VTEP.OuterUDPChecksum(); got != tt.want {
			t.Errorf("%q: OuterUDPChecksum = %v, want %v", tt.extra, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error
	}{
		{"unknown key", edit(t, 4, "  xdp_mod: auto"), []string{"line 4: uplink.xdp_mod: unknown key"}},
		{"unknown nested key", edit(t, 10, "    device: {type: tap, name: mflow42, bridg: br42}"), []string{"line 10: networks[0].device.bridg: unknown key"}},
		{"unknown top key", base + "extra: 1\n", []string{"line 21: extra: unknown key"}},
		{"duplicate key", edit(t, 7, "  port: 4789\n  port: 4790"), []string{"line 8", "port"}},
		{"wrong type int", edit(t, 17, "  batch: many"), []string{"line 17: steering.batch: cannot unmarshal", "many"}},
		{"wrong type long value", edit(t, 18, "  workers: twentyfivethousand"), []string{"line 18: steering.workers: cannot unmarshal"}},
		{"wrong type flow style", edit(t, 13, "    device: {type: tap, name: mflow43, mtu: big}"), []string{"line 13: networks[1].device.mtu: cannot unmarshal"}},
		{"wrong type vni", edit(t, 9, "  - vni: [1]"), []string{"line 9: networks[0].vni: cannot unmarshal"}},
		{"wrong type list", edit(t, 11, "    peers: 192.0.2.2"), []string{"line 11: networks[0].peers: cannot unmarshal"}},
		{"bad queues word", edit(t, 3, "  queues: some"), []string{"line 3", "uplink.queues"}},
		{"bad queue number", edit(t, 3, "  queues: [0, x]"), []string{"line 3", "uplink.queues"}},
		{"negative queue", edit(t, 3, "  queues: [0, -1]"), []string{"line 3", "uplink.queues[1]", "negative"}},
		{"duplicate queue", edit(t, 3, "  queues: [1, 1]"), []string{"line 3", "uplink.queues[1]", "twice"}},
		{"empty queue list", edit(t, 3, "  queues: []"), []string{"line 3", "uplink.queues"}},
		{"bad xdp mode", edit(t, 4, "  xdp_mode: turbo"), []string{"line 4", "uplink.xdp_mode", "turbo"}},
		{"rx ring not a power of two", edit(t, 4, "  rx_ring: 5000"), []string{"line 4", "uplink.rx_ring", "5000", "power of two"}},
		{"rx ring too small", edit(t, 4, "  rx_ring: 256"), []string{"line 4", "uplink.rx_ring", "256"}},
		{"rx ring too large", edit(t, 4, "  rx_ring: 131072"), []string{"line 4", "uplink.rx_ring", "131072"}},
		{"missing interface", edit(t, 2, ""), []string{"line 2", "uplink.interface", "required"}},
		{"long interface", edit(t, 2, "  interface: abcdefghijklmnop"), []string{"line 2", "uplink.interface", "15 bytes"}},
		{"bad address", edit(t, 6, "  address: 192.0.2.300"), []string{"line 6", "vtep.address", "not an IP"}},
		{"ipv6 address", edit(t, 6, "  address: 2001:db8::1"), []string{"line 6", "vtep.address", "IPv4"}},
		{"multicast vtep", edit(t, 6, "  address: 239.1.1.1"), []string{"line 6", "vtep.address", "unicast"}},
		{"bad peer", edit(t, 14, "    peers: [192.0.2.2, nowhere]"), []string{"line 14", "networks[1].peers[1]", "not an IP"}},
		{"peer is vtep", edit(t, 11, "    peers: [192.0.2.1]"), []string{"line 11", "networks[0].peers[0]", "local VTEP"}},
		{"duplicate peer", edit(t, 14, "    peers: [192.0.2.3, 192.0.2.3]"), []string{"line 14", "networks[1].peers[1]"}},
		{"no peers", edit(t, 11, "    peers: []"), []string{"line 11", "networks[0].peers", "at least one"}},
		{"port zero", edit(t, 7, "  port: 0"), []string{"line 7", "vtep.port"}},
		{"source ports reversed", edit(t, 7, "  port: 4789\n  source_ports: 60000-50000"), []string{"line 8", "vtep.source_ports", "LOW-HIGH"}},
		{"source ports not a range", edit(t, 7, "  port: 4789\n  source_ports: 50000"), []string{"line 8", "vtep.source_ports"}},
		{"source port zero", edit(t, 7, "  port: 4789\n  source_ports: 0-10"), []string{"line 8", "vtep.source_ports"}},
		{"ttl high", edit(t, 7, "  port: 4789\n  ttl: 256"), []string{"line 8", "vtep.ttl"}},
		{"partial checksum policy", edit(t, 7, "  port: 4789\n  partial_checksum: trust"), []string{"line 8", "vtep.partial_checksum", `"trust" is not one of accept, drop`}},
		{"transmit unknown", edit(t, 7, "  port: 4789\n  transmit: carrier-pigeon"), []string{"line 8", "vtep.transmit", "socket, af_xdp"}},
		{"udp checksum off on the socket path", edit(t, 7, "  port: 4789\n  transmit: socket\n  udp_checksum: false"), []string{"line 9", "vtep.udp_checksum", "af_xdp"}},
		{"udp checksum not a bool", edit(t, 7, "  port: 4789\n  udp_checksum: sometimes"), []string{"line 8", "vtep.udp_checksum"}},
		{"port high", edit(t, 7, "  port: 65536"), []string{"line 7", "vtep.port"}},
		{"vni too big", edit(t, 12, "  - vni: 16777216"), []string{"line 12", "networks[1].vni", "0..16777215"}},
		{"vni negative", edit(t, 12, "  - vni: -1"), []string{"line 12", "networks[1].vni"}},
		{"duplicate vni", edit(t, 12, "  - vni: 42"), []string{"line 12", "networks[1].vni", "networks[0]"}},
		{"duplicate device", edit(t, 13, "    device: {type: tap, name: mflow42}"), []string{"line 13", "networks[1].device.name", "networks[0]"}},
		{"device is uplink", edit(t, 13, "    device: {type: tap, name: eth1}"), []string{"line 13", "networks[1].device.name", "uplink"}},
		{"bad device type", edit(t, 13, "    device: {type: tun, name: mflow43}"), []string{"line 13", "networks[1].device.type", "tun"}},
		{"bad device name", edit(t, 13, "    device: {name: \"a/b\"}"), []string{"line 13", "networks[1].device.name"}},
		{"missing device name", edit(t, 13, "    device: {mtu: 1400}"), []string{"line 13", "networks[1].device.name", "required"}},
		{"mtu too small", edit(t, 13, "    device: {name: mflow43, mtu: 67}"), []string{"line 13", "networks[1].device.mtu"}},
		{"mtu too big", edit(t, 13, "    device: {name: mflow43, mtu: 65500}"), []string{"line 13", "networks[1].device.mtu"}},
		{"queue_len too small", edit(t, 13, "    device: {name: mflow43, queue_len: 63}"), []string{"line 13", "networks[1].device.queue_len", "64..65536"}},
		{"queue_len too big", edit(t, 13, "    device: {name: mflow43, queue_len: 65537}"), []string{"line 13", "networks[1].device.queue_len", "64..65536"}},
		{"queue_len on a veth", edit(t, 13, "    device: {type: veth, name: mflow43, queue_len: 4096}"), []string{"line 13", "networks[1].device.queue_len", "tap device only"}},
		{"no networks", strings.Split(base, "networks:")[0] + "steering: {}\n", []string{"line 1", "networks", "at least one"}},
		{"bad policy", edit(t, 16, "  policy: rss"), []string{"line 16", "steering.policy", "rss"}},
		{"batch zero", edit(t, 17, "  batch: 0"), []string{"line 17", "steering.batch"}},
		{"fdb limit negative", edit(t, 20, "  listen: 127.0.0.1:9469\nfdb:\n  max_learned: -1"), []string{"line 22", "fdb.max_learned", "out of range"}},
		{"fdb rate negative", edit(t, 19, "fdb: {learn_rate: -5}\nmetrics:"), []string{"line 19", "fdb.learn_rate", "out of range"}},
		{"batch huge", edit(t, 17, "  batch: 1000000"), []string{"line 17", "steering.batch"}},
		{"inline above batch", edit(t, 18, "  workers: 2\n  inline: 300"), []string{"line 19", "steering.inline", "0..256"}},
		{"spin negative", edit(t, 18, "  workers: 2\n  spin_us: -1"), []string{"line 19", "steering.spin_us"}},
		{"spin too long", edit(t, 18, "  workers: 2\n  spin_us: 10001"), []string{"line 19", "steering.spin_us", "0..10000"}},
		{"tap_rps reversed", edit(t, 18, "  workers: 2\n  tap_rps: 3-1"), []string{"line 19", "steering.tap_rps", "not a CPU list"}},
		{"tap_rps repeated", edit(t, 18, "  workers: 2\n  tap_rps: 1,0-2"), []string{"line 19", "steering.tap_rps", "twice"}},
		{"tap_rps word", edit(t, 18, "  workers: 2\n  tap_rps: on"), []string{"line 19", "steering.tap_rps", "off, auto"}},
		{"transmit_rps word", strings.Replace(base, "  port: 4789\n", "  port: 4789\n  transmit_rps: all\n", 1), []string{"vtep.transmit_rps", "not a CPU list", "off, auto"}},
		{"workers zero", edit(t, 18, "  workers: 0"), []string{"line 18", "steering.workers", "below 1"}},
		{"cpus mismatch", edit(t, 18, "  workers: 2\n  cpus: {dispatcher: 0, workers: [1]}"), []string{"line 19", "steering.cpus.workers", "1 CPUs listed for 2 workers"}},
		{"cpus negative", edit(t, 18, "  workers: 2\n  cpus: {dispatcher: -1}"), []string{"line 19", "steering.cpus.dispatcher"}},
		{"encap cpu negative", edit(t, 18, "  workers: 2\n  cpus: {encap: [1, -2]}"), []string{"line 19", "steering.cpus.encap[1]", "negative"}},
		{"bad listen", edit(t, 20, "  listen: localhost"), []string{"line 20", "metrics.listen"}},
		{"bad log level", base + "log: {level: loud}\n", []string{"line 21", "log.level", "loud"}},
		{"empty", "", []string{"empty"}},
		{"comments only", "# nothing\n", []string{"empty"}},
		{"two documents", base + "---\nuplink: {}\n", []string{"line 21", "more than one"}},
		{"not a mapping", "- 1\n", []string{"line 1"}},
		{"syntax", "uplink: [\n", []string{"line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q\n%s", tt.want, tt.doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestAllErrorsReported checks that Validate lists every problem, not only
// the first.
func TestAllErrorsReported(t *testing.T) {
	doc := edit(t, 17, "  batch: 0")
	doc = strings.Replace(doc, "vni: 43", "vni: 42", 1)
	_, err := Parse([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var paths []string
	for _, fe := range ve.Errors {
		paths = append(paths, fe.Path)
	}
	if want := []string{"networks[1].vni", "steering.batch"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
}

func TestCheckHost(t *testing.T) {
	c, err := Parse([]byte(edit(t, 3, "  queues: [0, 3]")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckHost(Host{UplinkMTU: 1500, UplinkQueues: 4, NumCPU: 2}); err != nil {
		t.Errorf("CheckHost(1500, 4 queues): %v", err)
	}
	if err := c.CheckUplinkMTU(1499); err == nil || !strings.Contains(err.Error(), "line 10: networks[0].device.mtu") ||
		strings.Contains(err.Error(), "networks[1]") || !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckUplinkMTU(1499) = %v, want an error on line 10 for networks[0] only", err)
	}
	if err := c.CheckUplinkMTU(1449); err == nil || !strings.Contains(err.Error(), "line 13: networks[1].device.mtu") {
		t.Errorf("CheckUplinkMTU(1449) = %v, want an error on line 13 for networks[1]", err)
	}
	if err := c.CheckHost(Host{UplinkQueues: 2}); err == nil || !strings.Contains(err.Error(), "line 3: uplink.queues[1]") {
		t.Errorf("CheckHost(2 queues) = %v, want an error for uplink.queues[1] on line 3", err)
	}
	c2, err := Parse([]byte(edit(t, 18, "  workers: 1\n  cpus: {dispatcher: 2, workers: [0]}")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.CheckHost(Host{NumCPU: 2}); err == nil || !strings.Contains(err.Error(), "line 19: steering.cpus.dispatcher") {
		t.Errorf("CheckHost(2 CPUs) = %v, want an error for the dispatcher CPU", err)
	}
	if err := c2.CheckHost(Host{NumCPU: 3}); err != nil {
		t.Errorf("CheckHost(3 CPUs) = %v", err)
	}
	ce, err := Parse([]byte(edit(t, 18, "  workers: 1\n  cpus: {encap: [0, 3]}")))
	if err != nil {
		t.Fatal(err)
	}
	if ce.Steering.CPUs == nil || !slices.Equal(ce.Steering.CPUs.Encap, []int{0, 3}) {
		t.Errorf("steering.cpus.encap parsed as %+v", ce.Steering.CPUs)
	}
	if err := ce.CheckHost(Host{NumCPU: 2}); err == nil || !strings.Contains(err.Error(), "line 19: steering.cpus.encap[1]") {
		t.Errorf("CheckHost(2 CPUs) = %v, want an error for steering.cpus.encap[1]", err)
	}
	c3, err := Parse([]byte(edit(t, 18, "  workers: 2\n  tap_rps: 1-3")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.CheckHost(Host{NumCPU: 2, PossibleCPUs: 2}); err == nil || !strings.Contains(err.Error(), "line 19: steering.tap_rps: CPU 3 does not exist") {
		t.Errorf("CheckHost(2 CPUs) = %v, want an error for tap_rps", err)
	}
	// The process may run on 2 of 4 CPUs: RPS may still name the others.
	if err := c3.CheckHost(Host{NumCPU: 2, PossibleCPUs: 4}); err != nil {
		t.Errorf("CheckHost(2 of 4 CPUs) = %v", err)
	}
	c4, err := Parse([]byte(strings.Replace(edit(t, 18, "  workers: 2"), "  port: 4789\n", "  port: 4789\n  transmit_rps: 0-7\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c4.CheckHost(Host{NumCPU: 4, PossibleCPUs: 4}); err == nil || !strings.Contains(err.Error(), "vtep.transmit_rps: CPU 7 does not exist") {
		t.Errorf("CheckHost(4 CPUs) = %v, want an error for transmit_rps", err)
	}
}

func TestCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		cpus []int
		mask string
	}{
		{"0", []int{0}, "1"},
		{"1", []int{1}, "2"},
		{"0-3,8", []int{0, 1, 2, 3, 8}, "10f"},
		{"31-32", []int{31, 32}, "1,80000000"},
		{"2, 40-41", []int{2, 40, 41}, "300,00000004"},
		{"64", []int{64}, "1,00000000,00000000"},
	} {
		got, err := ParseCPUList(c.in)
		if err != nil || !slices.Equal(got, c.cpus) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.cpus)
		}
		if m := CPUMask(got); m != c.mask {
			t.Errorf("CPUMask(%v) = %q, want %q", got, m, c.mask)
		}
	}
	for _, bad := range []string{"", "-1", "a", "1-", "3-1", "1,1", "2,1", "0-4096", "1,,2"} {
		if got, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", bad, got)
		}
	}
	if m := CPUMask(nil); m != "0" {
		t.Errorf("CPUMask(nil) = %q", m)
	}
	d := 1
	for _, c := range []struct {
		s     Steering
		avail []int
		want  []int
	}{
		{Steering{}, []int{0, 1}, nil},
		{Steering{TapRPS: RPSOff}, []int{0, 1}, nil},
		{Steering{TapRPS: RPSAuto}, []int{0, 1, 2, 3}, []int{0, 1, 2, 3}},
		{Steering{TapRPS: RPSAuto}, []int{0}, nil},
		{Steering{TapRPS: RPSAuto, CPUs: &CPUs{Dispatcher: &d, Workers: []int{2, 3}}}, []int{0, 1, 2, 3, 4}, []int{0, 4}},
		{Steering{TapRPS: RPSAuto, CPUs: &CPUs{Dispatcher: &d}}, []int{1, 5}, []int{5}},
		{Steering{TapRPS: RPSAuto, CPUs: &CPUs{Encap: []int{1}}}, []int{0, 1}, []int{0}},
		{Steering{TapRPS: "6-7"}, []int{0, 1}, []int{6, 7}},
	} {
		got, err := c.s.TapRPSCPUs(c.avail)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%+v.TapRPSCPUs(%v) = %v, %v; want %v", c.s, c.avail, got, err, c.want)
		}
	}
	// vtep.transmit_rps: empty is auto, and auto leaves out pinned CPUs.
	for _, c := range []struct {
		v     string
		avail []int
		want  []int
	}{{"", []int{0, 1, 2}, []int{0, 2}}, {RPSAuto, []int{0, 1}, []int{0}}, {RPSOff, []int{0, 1}, nil}, {"3", []int{0, 1}, []int{3}}} {
		cfg := Config{VTEP: VTEP{TransmitRPS: c.v}, Steering: Steering{CPUs: &CPUs{Dispatcher: &d}}}
		got, err := cfg.TransmitRPSCPUs(c.avail)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("transmit_rps %q over %v = %v, %v; want %v", c.v, c.avail, got, err, c.want)
		}
	}
}

// TestValidateWithoutYAML checks that a Config built in Go gets path-only
// errors.
func TestValidateWithoutYAML(t *testing.T) {
	c := Default()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate(Default()) succeeded; want missing uplink, address, networks")
	}
	for _, w := range []string{"uplink.interface: required", "vtep.address: required", "networks: at least one"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "line ") {
		t.Errorf("error %q names a line but the config has no YAML", err)
	}
}

func TestExampleLoads(t *testing.T) {
	path := filepath.Join("..", "examples", "mflow.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if err := c.CheckUplinkMTU(1500); err != nil {
		t.Errorf("example does not fit a 1500-byte uplink: %v", err)
	}
	if len(c.Networks) == 0 {
		t.Errorf("example has no networks")
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) = %v, want a not-exist error that is not ErrInvalid", err)
	}
}

func TestLineOf(t *testing.T) {
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"uplink":                   2, // the mapping value starts on line 2
		"vtep.port":                7,
		"networks[1]":              12,
		"networks[1].device.mtu":   13,
		"networks[1].peers[1]":     14,
		"networks[5].vni":          9, // missing element: the list
		"steering.cpus.dispatcher": 16,
	} {
		if got := lineOf(c.root, path); got != want {
			t.Errorf("lineOf(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestRxRing(t *testing.T) {
	c, err := Parse([]byte(edit(t, 4, "  rx_ring: 1024")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Uplink.RxRing != 1024 || c.Uplink.UMEMBytes() != 4<<20 {
		t.Errorf("rx_ring %d, UMEM %d bytes; want 1024 and 4 MiB", c.Uplink.RxRing, c.Uplink.UMEMBytes())
	}
	if d := Default().Uplink; d.RxRing != DefaultRxRing || d.UMEMBytes() != 32<<20 {
		t.Errorf("default rx_ring %d, UMEM %d bytes; want %d and 32 MiB", d.RxRing, d.UMEMBytes(), DefaultRxRing)
	}
}
