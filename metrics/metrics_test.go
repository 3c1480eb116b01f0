package metrics

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sample is a snapshot with every field set.
func sample() Snapshot {
	return Snapshot{
		Decap: Flow{Received: Counter{1000, 150000}, Delivered: Counter{900, 90000}, InFlight: 40},
		Encap: Flow{Received: Counter{500, 60000}, Delivered: Counter{498, 80000}, InFlight: 0},
		Drops: []Drop{
			{Decap, "short_frame", 10}, {Decap, "unknown_vni", 50}, {Encap, "no_fdb_entry", 2}, {Decap, "peer_not_allowed", 0},
		},
		Workers:              []uint64{400, 500, 0},
		MicroflowsDispatched: 7,
		MergerWaits:          3,
		PartialChecksums:     5,
		FDB:                  FDB{Entries: 12, TableFull: 3, RateLimited: 4},
		NeighbourOverruns:    2,
		TransmitKernelDrops:  9,
		XDP:                  []XDPVerdict{{"fragment", 6}, {"no_socket", 8}, {"redirected", 1000}},
		Networks: []Network{
			{VNI: 42, Device: "mflow42", Delivered: Counter{800, 80000}, Transmitted: Counter{400, 64000}},
			{VNI: 43, Device: "mflow43", Delivered: Counter{100, 10000}, Transmitted: Counter{98, 16000}, KernelDrops: 7},
		},
		UMEM: []UMEM{
			{Queue: 0, Size: 4096, Free: 1000, Fill: 2048, RX: 8, Stages: 40, TX: 900, Completion: 100},
			{Queue: 1, Size: 4096, Free: 2048, Fill: 2048},
		},
		XSK:       []XSK{{Queue: 0, RxDropped: 1, RxInvalid: 2, TxInvalid: 3, RxRingFull: 4, FillRingEmpty: 5, TxRingEmpty: 6}},
		Interface: "eth1",
		XDPMode:   "native",
		Transmit:  "tunnel",
	}
}

func listen(t *testing.T, fn SnapshotFunc) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", NewRegistry(fn))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func TestSampleChecks(t *testing.T) {
	s := sample()
	if err := s.Check(); err != nil {
		t.Fatalf("sample does not satisfy the invariants: %v", err)
	}
	for name, mod := range map[string]func(*Snapshot){
		"decap":      func(s *Snapshot) { s.Decap.Delivered.Packets++ },
		"encap":      func(s *Snapshot) { s.Encap.InFlight++ },
		"drop":       func(s *Snapshot) { s.Drops[0].Packets++ },
		"umem":       func(s *Snapshot) { s.UMEM[1].Free-- },
		"duplicate":  func(s *Snapshot) { s.Drops = append(s.Drops, Drop{Decap, "short_frame", 0}) },
		"wrong side": func(s *Snapshot) { s.Drops[2].Direction = Decap },
	} {
		s := sample()
		mod(&s)
		if err := s.Check(); err == nil {
			t.Errorf("%s: Check accepted a broken snapshot", name)
		}
	}
}

// TestRoundTrip serves a snapshot, scrapes it and parses it back.
func TestRoundTrip(t *testing.T) {
	want := sample()
	srv := listen(t, func() Snapshot { return sample() })
	fams, err := Scrape(context.Background(), srv.URL())
	if err != nil {
		t.Fatalf("Scrape: %v", err)
	}
	got := fams.Snapshot()
	sortDrops(want.Drops)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
	}
	if err := got.Check(); err != nil {
		t.Errorf("scraped snapshot: %v", err)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("no %s in the exposition", name)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "mflow_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("unexpected metric %s", name)
		}
	}
}

// TestExposition checks a few lines of the text format literally, so that
// names and labels cannot drift unnoticed.
func TestExposition(t *testing.T) {
	srv := listen(t, func() Snapshot { return sample() })
	resp, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range []string{
		"mflow_received_packets_total 1000",
		"mflow_delivered_bytes_total 90000",
		"mflow_transmitted_packets_total 498",
		`mflow_dropped_packets_total{direction="decap",reason="unknown_vni"} 50`,
		`mflow_dropped_packets_total{direction="decap",reason="peer_not_allowed"} 0`,
		`mflow_in_flight_packets{direction="decap"} 40`,
		`mflow_worker_packets_total{worker="1"} 500`,
		"mflow_microflows_dispatched_total 7",
		"mflow_merger_waits_total 3",
		"mflow_partial_checksum_accepted_total 5",
		"mflow_fdb_entries 12",
		"mflow_neighbour_overruns_total 2",
		"mflow_transmit_kernel_dropped_packets_total 9",
		`mflow_xdp_packets_total{verdict="no_socket"} 8`,
		`mflow_fdb_learn_refused_total{reason="table_full"} 3`,
		`mflow_fdb_learn_refused_total{reason="rate_limited"} 4`,
		`mflow_network_delivered_packets_total{device="mflow42",vni="42"} 800`,
		`mflow_umem_frames{queue="0",state="tx"} 900`,
		`mflow_umem_size_frames{queue="1"} 4096`,
		`mflow_xsk_events_total{event="rx_ring_full",queue="0"} 4`,
		`mflow_xdp_mode_info{interface="eth1",mode="native"} 1`,
		`mflow_transmit_path_info{path="tunnel"} 1`,
		"# TYPE mflow_received_packets_total counter",
		"# TYPE mflow_umem_frames gauge",
	} {
		if !bytes.Contains(body, []byte(line+"\n")) {
			t.Errorf("exposition lacks %q", line)
		}
	}
	if resp, err := http.Get("http://" + srv.Addr().String() + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET / = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// fakeDataplane moves packets through received -> delivered/dropped from
// several goroutines, the way the dataplane counts them.
type fakeDataplane struct {
	received, delivered atomic.Uint64
	dropped             [3]atomic.Uint64
	workers             [2]atomic.Uint64
}

var fakeReasons = [3]string{"short_frame", "unknown_vni", "ring_full"}

// snapshot reads the outputs before the input, so that in flight =
// received - delivered - dropped is never negative and conservation holds
// by construction: the technique the dataplane's SnapshotFunc should use.
func (f *fakeDataplane) snapshot() Snapshot {
	var s Snapshot
	s.Decap.Delivered.Packets = f.delivered.Load()
	var dropped uint64
	for i := range f.dropped {
		n := f.dropped[i].Load()
		dropped += n
		s.Drops = append(s.Drops, Drop{Decap, fakeReasons[i], n})
	}
	s.Decap.Received.Packets = f.received.Load()
	s.Decap.InFlight = s.Decap.Received.Packets - s.Decap.Delivered.Packets - dropped
	for i := range f.workers {
		s.Workers = append(s.Workers, f.workers[i].Load())
	}
	return s
}

// TestConservationUnderLoad scrapes while fake workers count packets and
// checks the conservation property in every scrape.
func TestConservationUnderLoad(t *testing.T) {
	var dp fakeDataplane
	srv := listen(t, dp.snapshot)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 64; i++ {
					dp.received.Add(1)
					dp.workers[w].Add(1)
					if k := r.IntN(10); k < 3 {
						dp.dropped[k].Add(1)
					} else {
						dp.delivered.Add(1)
					}
				}
			}
		}()
	}
	var last uint64
	for i := 0; i < 30; i++ {
		fams, err := Scrape(context.Background(), URL(srv.Addr().String()))
		if err != nil {
			t.Fatalf("Scrape: %v", err)
		}
		s := fams.Snapshot()
		if err := s.Check(); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		if s.Decap.Received.Packets < last {
			t.Fatalf("scrape %d: received went back from %d to %d", i, last, s.Decap.Received.Packets)
		}
		last = s.Decap.Received.Packets
	}
	close(stop)
	wg.Wait()
	s := dp.snapshot()
	if s.Decap.InFlight != 0 || s.Decap.Received.Packets == 0 {
		t.Errorf("after the load: %+v", s.Decap)
	}
	if s.Workers[0]+s.Workers[1] != s.Decap.Received.Packets {
		t.Errorf("worker packets %v do not add up to %d", s.Workers, s.Decap.Received.Packets)
	}
}

func TestWriteTable(t *testing.T) {
	s := sample()
	var b strings.Builder
	if err := WriteTable(&b, &s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{"uplink eth1, XDP mode native", "unknown_vni", "mflow42", "merger waits", "partial checksums accepted", "fdb not learned: rate limited", "xdp verdict", "no_socket", "worker 2 packets", "fill ring empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "NO") {
		t.Errorf("a valid snapshot shows a failed check")
	}
	s.Decap.InFlight++
	s.UMEM[0].Free++
	b.Reset()
	WriteTable(&b, &s)
	if got := strings.Count(b.String(), "NO"); got != 2 {
		t.Errorf("broken conservation and UMEM show %d failed checks, want 2:\n%s", got, b.String())
	}
}

func TestScrapeErrors(t *testing.T) {
	srv := listen(t, func() Snapshot { return Snapshot{} })
	if _, err := Scrape(context.Background(), "http://"+srv.Addr().String()+"/nope"); err == nil {
		t.Errorf("Scrape of a 404 succeeded")
	}
	if _, err := Scrape(context.Background(), "http://127.0.0.1:1/metrics"); err == nil {
		t.Errorf("Scrape of a closed port succeeded")
	}
	if _, err := Listen(srv.Addr().String(), NewRegistry(func() Snapshot { return Snapshot{} })); err == nil {
		t.Errorf("Listen on a busy address succeeded")
	}
	if got, want := URL("127.0.0.1:9469"), "http://127.0.0.1:9469/metrics"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}

// FuzzParse feeds arbitrary text to the parser and the snapshot rebuilder:
// no panic, and a rebuilt snapshot renders.
func FuzzParse(f *testing.F) {
	f.Add("mflow_received_packets_total 5\nmflow_dropped_packets_total{direction=\"decap\",reason=\"x\"} 2\n")
	f.Add("mflow_worker_packets_total{worker=\"3\"} 1\nmflow_umem_frames{queue=\"0\",state=\"free\"} 9\n")
	f.Add("mflow_worker_packets_total{worker=\"99999999\"} 1\nmflow_in_flight_packets{direction=\"decap\"} -1\n")
	f.Fuzz(func(t *testing.T, text string) {
		fams, err := ParseText(strings.NewReader(text))
		if err != nil {
			return
		}
		s := fams.Snapshot()
		if len(s.Workers) > 1<<16+1 {
			t.Fatalf("%d workers from %d bytes", len(s.Workers), len(text))
		}
		if err := WriteTable(io.Discard, &s); err != nil {
			t.Fatal(err)
		}
	})
}
