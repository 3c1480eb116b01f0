package metrics

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestKernelDropsExported: the kernel's drops before mflow (an uplink
// socket's rx_dropped and rx_ring_full, summed over queues; a device's
// queue to mflow) appear under mflow_dropped_packets_total with their own
// reasons, in the stats table too, without entering the conservation
// check: a scrape parses back to the same snapshot, which still checks.
func TestKernelDropsExported(t *testing.T) {
	s := sample()
	s.XSK = append(s.XSK, XSK{Queue: 1, RxDropped: 10, RxRingFull: 20})
	srv := listen(t, func() Snapshot { return s })
	resp, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`mflow_dropped_packets_total{direction="decap",reason="xsk_rx_dropped"} 11`,
		`mflow_dropped_packets_total{direction="decap",reason="xsk_rx_ring_full"} 24`,
		`mflow_dropped_packets_total{direction="encap",reason="device_kernel_dropped"} 7`,
	} {
		if !bytes.Contains(body, []byte(line+"\n")) {
			t.Errorf("exposition lacks %q", line)
		}
	}
	fams, err := Scrape(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	got := fams.Snapshot()
	if err := got.Check(); err != nil {
		t.Errorf("scraped snapshot with kernel drops: %v", err)
	}
	for _, d := range got.Drops {
		if IsKernelDrop(d.Reason) {
			t.Errorf("kernel drop %+v parsed into Drops (it would count twice)", d)
		}
	}
	if k := got.KernelDrops(); k[0].Packets != 11 || k[1].Packets != 24 || k[2].Packets != 7 {
		t.Errorf("kernel drops after a scrape: %+v", k)
	}
	var b strings.Builder
	if err := WriteTable(&b, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "xsk_rx_ring_full (kernel, before mflow)") {
		t.Errorf("stats table lacks the kernel's drops:\n%s", b.String())
	}
}
