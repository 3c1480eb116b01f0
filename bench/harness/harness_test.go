package harness

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mflow/config"
)

// TestMain lets the harness re-execute the test binary as the benchmark's
// mflow daemon process (see child.go).
func TestMain(m *testing.M) {
	RunDaemonChild()
	os.Exit(m.Run())
}

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"only NaN", []float64{nan}, Summary{}},
		{"one", []float64{2}, Summary{Median: 2, Min: 2, Max: 2, N: 1}},
		{"odd", []float64{5, 1, 3}, Summary{Median: 3, Min: 1, Max: 5, N: 3}},
		{"even", []float64{4, 1, 3, 10}, Summary{Median: 3.5, Min: 1, Max: 10, N: 4}},
		{"NaN ignored", []float64{nan, 7, 1, nan, 4}, Summary{Median: 4, Min: 1, Max: 7, N: 3}},
	} {
		in := append([]float64(nil), tc.in...)
		got := Summarize(in)
		if got != tc.want {
			t.Errorf("%s: Summarize(%v) = %+v, want %+v", tc.name, tc.in, got, tc.want)
		}
		for i := range in {
			if !(in[i] == tc.in[i] || math.IsNaN(in[i]) && math.IsNaN(tc.in[i])) {
				t.Errorf("%s: Summarize modified its input: %v", tc.name, in)
			}
		}
	}
	if s := (Summary{Median: 4, Min: 3, Max: 5, N: 3}).Spread(); s != 0.5 {
		t.Errorf("Spread = %v, want 0.5", s)
	}
	if s := (Summary{}).Spread(); s != 0 {
		t.Errorf("Spread of nothing = %v, want 0", s)
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for q, want := range map[float64]float64{0: 1, 0.5: 500, 0.99: 990, 0.999: 999, 1: 1000} {
		if got := Percentile(xs, q); got != want {
			t.Errorf("Percentile(1..1000, %v) = %v, want %v", q, got, want)
		}
	}
	if !math.IsNaN(Percentile(nil, 0.5)) {
		t.Error("Percentile of nothing is not NaN")
	}
}

const stat0 = `cpu  100 0 100 800 0 0 0 0 0 0
cpu0 50 0 50 400 0 0 0 0 0 0
cpu1 50 0 50 400 0 0 0 0 0 0
intr 12345 1 2
ctxt 999
`

// After 100 ticks per core: cpu0 fully busy (20 user, 30 system, 50
// softirq), cpu1 idle but for 10 user and 10 iowait.
const stat1 = `cpu  130 0 130 880 10 0 50 0 0 0
cpu0 70 0 80 400 0 0 50 0 0 0
cpu1 60 0 50 480 10 0 0 0 0 0
intr 22345 1 2
`

func TestCPUUsage(t *testing.T) {
	b, err := ParseProcStat(strings.NewReader(stat0))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseProcStat(strings.NewReader(stat1))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2 || b[1].CPU != 1 || b[1].Idle != 400 {
		t.Fatalf("parsed %+v", b)
	}
	got := CPUUsage(b, a)
	want := []CoreUsage{
		{CPU: 0, Busy: 100, User: 20, System: 30, SoftIRQ: 50},
		{CPU: 1, Busy: 10, User: 10, System: 0, SoftIRQ: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("CPUUsage = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("core %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// A core missing before (hot-plugged) is left out; equal readings
	// report zeros.
	if u := CPUUsage(b[:1], a); len(u) != 1 || u[0].CPU != 0 {
		t.Errorf("hot-plugged core: %+v", u)
	}
	if u := CPUUsage(b, b); u[0] != (CoreUsage{CPU: 0}) {
		t.Errorf("no ticks: %+v", u[0])
	}
	if _, err := ParseProcStat(strings.NewReader("cpu0 1 x 3 4\n")); err == nil {
		t.Error("bad field parsed without error")
	}
	m := medianCPU([][]CoreUsage{{{CPU: 0, Busy: 10}}, {{CPU: 0, Busy: 30}}, {{CPU: 0, Busy: 20}}})
	if len(m) != 1 || m[0].Busy != 20 {
		t.Errorf("medianCPU = %+v, want busy 20", m)
	}
}

// testReport is a report of two modes in two steps.
func testReport() *Report {
	o := DefaultOptions()
	o.Sizes, o.Flows, o.Reps = []int{64, 256}, []int{1}, 3
	r := &Report{Options: o, Machine: Machine{CPUs: 2, GenCPUs: []int{0}}, Modes: []string{"kernel", "microflow"}}
	for _, mode := range []string{"kernel", "microflow"} {
		for _, size := range []int{64, 256} {
			res := Result{Mode: mode, Step: Step{Kind: KindUDP, Size: size, Flows: 1}}
			for rep := range 3 {
				v := float64(size) / 64 * float64(rep+1)
				if mode == "microflow" {
					v *= 2
				}
				res.Samples = append(res.Samples, Sample{
					Metrics: map[string]float64{MDeliveredMpps: v, MOfferedMpps: 10, MOutOfOrder: 0},
					CPU:     []CoreUsage{{CPU: 0, Busy: 50 + float64(rep)}, {CPU: 1, Busy: 10}},
				})
			}
			res.summarise()
			r.Results = append(r.Results, res)
		}
	}
	r.Results = append(r.Results, Result{Mode: "single", Step: Step{Kind: KindTCP, Size: 65536}, Error: "connecting: refused"})
	return r
}

func TestCSVShape(t *testing.T) {
	r := testReport()
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := CSVHeader()
	if len(rows) != 1+len(r.Results) {
		t.Fatalf("%d rows, want %d", len(rows), 1+len(r.Results))
	}
	if strings.Join(rows[0], ",") != strings.Join(head, ",") {
		t.Fatalf("header %v, want %v", rows[0], head)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	// microflow at 256 bytes: samples 8, 16, 24.
	row := rows[4]
	if row[col["mode"]] != "microflow" || row[col["size"]] != "256" {
		t.Fatalf("row 4 is %v", row[:4])
	}
	for name, want := range map[string]string{"delivered_mpps": "16", "delivered_mpps_min": "8", "delivered_mpps_max": "24",
		"reps": "3", "cpu_busy_pct_per_core": "0:51 1:10", "loss_pct": ""} {
		if got := row[col[name]]; got != want {
			t.Errorf("column %s = %q, want %q", name, got, want)
		}
	}
	if got := rows[5][col["error"]]; got != "connecting: refused" {
		t.Errorf("error column = %q", got)
	}
}

func TestJSONShape(t *testing.T) {
	r := testReport()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(r.Results) {
		t.Fatalf("%d results after round trip, want %d", len(back.Results), len(r.Results))
	}
	got := back.Results[1].Metrics[MDeliveredMpps]
	if got != (Summary{Median: 8, Min: 4, Max: 12, N: 3}) {
		t.Errorf("kernel 256: delivered %+v", got)
	}
	var raw map[string]any
	json.Unmarshal(buf.Bytes(), &raw)
	for _, k := range []string{"started", "machine", "options", "results"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

func TestMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := testReport().WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| kernel | udp decap size=64 flows=1 | 10.000 | 2.000 [1.000–3.000] | 1.00 |",
		"| microflow | udp decap size=256 flows=1 | 10.000 | 16.000 [8.000–24.000] | 2.00 |",
		"single (error: connecting: refused)",
		// The summary: microflow ÷ kernel per workload.
		"| udp decap size=256 flows=1, peer → container: delivered | 2.00 |",
		"Commit unknown.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	files, err := testReport().WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"report.json", "results.csv", "report.md", "fig8a_udp_size.png", "ratio_decap.png"}
	for _, w := range want {
		p := filepath.Join(dir, w)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("missing %s (wrote %v)", w, files)
			continue
		}
		if strings.HasSuffix(w, ".png") && !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s is not a PNG", w)
		}
	}
	if len(files) != len(want) {
		t.Errorf("wrote %v, want exactly %v (no plot without a line)", files, want)
	}
}

func TestExpandAndSteps(t *testing.T) {
	o := DefaultOptions()
	o.Modes = []string{"kernel", "microflow", "ceiling", "single"}
	o.Workers = []int{1, 4}
	modes, err := o.Expand()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range modes {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "kernel,microflow-w1,microflow-w4,ceiling,single" {
		t.Errorf("modes %s", got)
	}
	o.Workers = []int{2}
	modes, _ = o.Expand()
	if modes[1].Name != "microflow" || modes[1].Workers != 2 {
		t.Errorf("default workers: %+v", modes[1])
	}
	// Every mflow mode once per device type; the kernel's modes once.
	dev := o
	dev.Devices = []string{"tap", "veth"}
	names = nil
	for _, m := range must(dev.Expand()) {
		names = append(names, m.Name+"/"+m.Device)
	}
	if got := strings.Join(names, ","); got != "kernel/,microflow/tap,microflow-veth/veth,ceiling/,single/tap,single-veth/veth" {
		t.Errorf("modes with devices: %s", got)
	}
	dev.Devices = []string{"macvlan"}
	if _, err := dev.Expand(); err == nil {
		t.Error("unknown device type accepted")
	}
	// ceiling has only UDP steps; others have all kinds. UDP and TCP
	// steps come in both directions.
	o.TCPClients = []string{ClientBuiltin, ClientIperf3}
	o.UDPRates = []float64{150e3, 20e3}
	for _, m := range modes {
		kinds := map[string]int{}
		dirs := map[string]int{}
		loaded := 0
		paced := map[string]bool{}
		for _, s := range o.StepsFor(m) {
			kinds[s.Kind]++
			dirs[s.Kind+"/"+s.Dir]++
			if s.Load != "" {
				loaded++
			}
			if s.Kind == KindUDP && s.Rate > 0 {
				if s.Flows != o.Flows[0] {
					t.Errorf("%s: paced step %s not at the first flow count", m.Name, s)
				}
				paced[s.String()] = true
			}
		}
		// Each size of the sweep once more at each paced rate, both ways
		// (not in ceiling, whose transmit is not paced).
		rates := o.UDPRates
		if m.Kind == ModeCeiling {
			rates = nil
			if len(paced) != 0 {
				t.Errorf("ceiling has paced steps %v", paced)
			}
		}
		for _, dir := range []string{DirDecap, DirEncap} {
			if rates == nil {
				break
			}
			for _, size := range o.Sizes {
				for _, r := range []string{"150", "20"} {
					name := fmt.Sprintf("udp %s size=%d flows=%d rate=%skpps", dir, size, o.Flows[0], r)
					if !paced[name] {
						t.Errorf("%s: no step %q among %v", m.Name, name, paced)
					}
				}
			}
		}
		wantUDP := len(o.Sizes)*(1+len(rates)) + len(o.Flows) - 1
		if dirs[KindUDP+"/"+DirDecap] != wantUDP || dirs[KindUDP+"/"+DirEncap] != wantUDP {
			t.Errorf("%s: UDP steps by direction %v, want %d each", m.Name, dirs, wantUDP)
		}
		if m.Kind == ModeCeiling && (kinds[KindTCP] != 0 || kinds[KindLatency] != 0 || kinds[KindRR] != 0) {
			t.Errorf("ceiling has steps %v", kinds)
		}
		if m.Kind == ModeCeiling {
			continue
		}
		wantTCP := len(o.TCPSizes) * len(o.TCPStreams) * len(o.TCPClients)
		if dirs[KindTCP+"/"+DirDecap] != wantTCP || dirs[KindTCP+"/"+DirEncap] != wantTCP || kinds[KindLatency] != len(o.Rates) {
			t.Errorf("%s has steps %v", m.Name, dirs)
		}
		// rr: every size and protocol at idle, the first size under each load.
		wantRR := len(o.RRProtos) * (len(o.RRSizes) + len(o.RRLoads))
		if kinds[KindRR] != wantRR || loaded != len(o.RRProtos)*len(o.RRLoads) {
			t.Errorf("%s: %d rr steps (%d loaded), want %d (%d)", m.Name, kinds[KindRR], loaded, wantRR, len(o.RRProtos)*len(o.RRLoads))
		}
	}
	o.TCPClients, o.UDPRates = nil, nil
	// The wire Fig. 7 sweep: merger off then on, one mode per batch size,
	// each with its one step.
	o.ReorderBatches, o.ReorderWorkers, o.ReorderWire = []int{1, 256}, 3, true
	var wire []string
	for _, m := range o.reorderWireModes() {
		st := o.StepsFor(m)
		if len(st) != 1 || st[0].Kind != KindWireReorder || st[0].Batch != m.Batch || st[0].Workers != 3 || m.Policy != "microflow" {
			t.Errorf("%+v: steps %+v", m, st)
		}
		wire = append(wire, fmt.Sprintf("%s/%d/%v", m.Name, m.Batch, m.Unordered))
	}
	if got := strings.Join(wire, ","); got != "microflow-unordered/1/true,microflow-unordered/256/true,microflow-merger/1/false,microflow-merger/256/false" {
		t.Errorf("wire Fig. 7 modes %s", got)
	}
	o.ReorderWire = false
	if len(o.reorderWireModes()) != 0 {
		t.Error("wire Fig. 7 modes without ReorderWire")
	}
	// An empty, non-nil mode list runs only the Fig. 7 sweeps; nil means
	// the default modes; with neither there is nothing to run.
	only := DefaultOptions()
	only.Modes = []string{}
	if err := only.fill(); err != nil {
		t.Errorf("Fig. 7 only: %v", err)
	} else if ms, _ := only.Expand(); len(ms) != 0 {
		t.Errorf("Fig. 7 only: modes %v", ms)
	}
	none := only
	none.Modes, none.ReorderBatches = []string{}, nil
	if err := none.fill(); err == nil || !strings.Contains(err.Error(), "nothing to measure") {
		t.Errorf("nothing to measure: %v", err)
	}
	var zero Options
	if err := zero.fill(); err != nil || len(zero.Modes) != len(DefaultOptions().Modes) {
		t.Errorf("nil modes: %v, %v", zero.Modes, err)
	}
	for _, b := range []int{0, 1 << 17} {
		big := DefaultOptions()
		big.ReorderBatches = []int{b}
		if err := big.fill(); err == nil {
			t.Errorf("Fig. 7 batch %d accepted", b)
		}
	}
	o.Modes = []string{"kernal"}
	if _, err := o.Expand(); err == nil {
		t.Error("unknown mode accepted")
	}
	bad := DefaultOptions()
	bad.Sizes = []int{2000}
	if err := bad.fill(); err == nil {
		t.Error("payload above the overlay MTU accepted")
	}
	for _, bad := range []func(o *Options){
		func(o *Options) { o.Dirs = []string{"up"} },
		func(o *Options) { o.TCPClients = []string{"netcat"} },
		func(o *Options) { o.RRProtos = []string{"sctp"} },
		func(o *Options) { o.RRLoads = []string{"sideways"} },
		func(o *Options) { o.RRSizes = []int{0} },
		func(o *Options) { o.TCPStreams = []int{0} },
	} {
		b := DefaultOptions()
		bad(&b)
		if err := b.fill(); err == nil {
			t.Errorf("bad option accepted: %+v", b)
		}
	}
	if QuickOptions().Estimate() > 60*time.Second {
		t.Errorf("quick run estimated at %v", QuickOptions().Estimate())
	}
}

// TestReorder runs the in-memory Fig. 7 experiment: with the merger every
// frame arrives, in order; without it none is lost or duplicated.
func TestReorder(t *testing.T) {
	o := DefaultOptions()
	o.ReorderBatches, o.ReorderPackets, o.Reps, o.ReorderWorkers = []int{1, 64}, 1<<14, 1, 2
	rs := Reorder(context.Background(), o, nil)
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4", len(rs))
	}
	for _, r := range rs {
		if r.Error != "" {
			t.Fatalf("%s %s: %s", r.Mode, r.Step, r.Error)
		}
		s := r.Samples[0]
		if s.Recv != s.Sent || s.Metrics[MDuplicates] != 0 || s.Metrics[MLossPct] != 0 {
			t.Errorf("%s %s: received %d of %d, %v duplicates", r.Mode, r.Step, s.Recv, s.Sent, s.Metrics[MDuplicates])
		}
		if r.Mode == "microflow-merger" && (s.Metrics[MOutOfOrder] != 0 || s.Metrics[MReorderEvents] != 0) {
			t.Errorf("%s %s: %v out of order with the merger", r.Mode, r.Step, s.Metrics[MOutOfOrder])
		}
		if ev := s.Metrics[MReorderEvents]; ev > s.Metrics[MOutOfOrder] {
			t.Errorf("%s %s: %v backward jumps but %v late packets", r.Mode, r.Step, ev, s.Metrics[MOutOfOrder])
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestExpandVariants: every list of mflow settings multiplies the mflow
// modes, in order, each named by its values; kernel modes stay single.
func TestExpandVariants(t *testing.T) {
	o := DefaultOptions()
	o.Modes = []string{"kernel", "single"}
	o.Devices = []string{"tap", "veth"}
	o.Transmits = []string{"", "socket"}
	o.TapQueues = []int{1, 2}
	o.TapRPS = []string{"off", "1-3"}
	modes, err := o.Expand()
	if err != nil {
		t.Fatal(err)
	}
	if len(modes) != 1+16 || modes[0].Name != "kernel" {
		t.Fatalf("%d modes, first %q; want kernel and 16 of single", len(modes), modes[0].Name)
	}
	for i, want := range map[int]Mode{
		1:  {Name: "single-q1-rpsoff", Device: "tap", TapQueues: 1, TapRPS: "off"},
		2:  {Name: "single-q1-rps1-3", Device: "tap", TapQueues: 1, TapRPS: "1-3"},
		3:  {Name: "single-q2-rpsoff", Device: "tap", TapQueues: 2, TapRPS: "off"},
		5:  {Name: "single-socket-q1-rpsoff", Device: "tap", Transmit: "socket", TapQueues: 1, TapRPS: "off"},
		16: {Name: "single-veth-socket-q2-rps1-3", Device: "veth", Transmit: "socket", TapQueues: 2, TapRPS: "1-3"},
	} {
		m := modes[i]
		if m.Name != want.Name || m.Device != want.Device || m.Transmit != want.Transmit || m.TapQueues != want.TapQueues || m.TapRPS != want.TapRPS || m.Policy != "single" {
			t.Errorf("mode %d = %+v, want %+v", i, m, want)
		}
	}
	o.TapRPS = []string{"2-1"}
	if _, err := o.Expand(); err == nil || !strings.Contains(err.Error(), "tap RPS") {
		t.Errorf("Expand with tap RPS 2-1: %v, want an error", err)
	}
	o.Modes, o.Devices, o.Transmits, o.TapQueues, o.TapRPS = []string{"microflow"}, nil, nil, nil, nil
	o.Inlines = []int{-1, 0, 255}
	if modes, err = o.Expand(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range modes {
		got = append(got, m.Name+"="+m.Inline)
	}
	if want := []string{"microflow=", "microflow-inl0=0", "microflow-inl255=255"}; !slices.Equal(got, want) {
		t.Errorf("inline modes %q, want %q", got, want)
	}
	o.Inlines = []int{o.Batch + 1}
	if _, err := o.Expand(); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Errorf("Expand with inline above the batch: %v, want an error", err)
	}
	o.Inlines, o.Spins = nil, []int{config.MaxSpinMicros + 1}
	if _, err := o.Expand(); err == nil || !strings.Contains(err.Error(), "spin") {
		t.Errorf("Expand with spin above the most: %v, want an error", err)
	}
	o.Spins, o.RxRings = nil, []int{0, 2048}
	if modes, err = o.Expand(); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, m := range modes {
		got = append(got, fmt.Sprintf("%s=%d", m.Name, m.RxRing))
	}
	if want := []string{"microflow=0", "microflow-ring2048=2048"}; !slices.Equal(got, want) {
		t.Errorf("rx ring modes %q, want %q", got, want)
	}
	for _, r := range []int{-1, 256, 3000, 1 << 17} {
		o.RxRings = []int{r}
		if _, err := o.Expand(); err == nil || !strings.Contains(err.Error(), "rx ring") {
			t.Errorf("Expand with rx ring %d: %v, want an error", r, err)
		}
	}
	o.RxRings, o.EncapCPUs = nil, []string{"", "0", "0, 0"}
	if modes, err = o.Expand(); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, m := range modes {
		got = append(got, fmt.Sprintf("%s=%v", m.Name, m.EncapCPUs))
	}
	if want := []string{"microflow-ecpuoff=[]", "microflow-ecpu0=[0]", "microflow-ecpu0.0=[0 0]"}; !slices.Equal(got, want) {
		t.Errorf("encap CPU modes %q, want %q", got, want)
	}
	for _, v := range []string{"x", "-1", fmt.Sprint(runtime.NumCPU()), "0,"} {
		o.EncapCPUs = []string{v}
		if _, err := o.Expand(); err == nil || !strings.Contains(err.Error(), "encap CPUs") {
			t.Errorf("Expand with encap CPUs %q: %v, want an error", v, err)
		}
	}
}

func TestMergeResults(t *testing.T) {
	step := Step{Kind: KindUDP, Dir: DirDecap, Size: 64, Flows: 1}
	other := Step{Kind: KindUDP, Dir: DirDecap, Size: 1422, Flows: 1}
	res := func(mode string, s Step, round int, vals ...float64) Result {
		r := Result{Mode: mode, Step: s}
		for _, v := range vals {
			r.Samples = append(r.Samples, Sample{Metrics: map[string]float64{MDeliveredMpps: v}, Round: round})
		}
		r.summarise()
		return r
	}
	all := mergeResults(nil, []Result{res("kernel", step, 1, 1, 2), res("single", step, 1, 10)})
	all = mergeResults(all, []Result{res("kernel", step, 2, 9), res("kernel", other, 2, 5)})
	bad := res("single", step, 2)
	bad.Error = "connecting: refused"
	all = mergeResults(all, []Result{bad})
	if len(all) != 3 {
		t.Fatalf("%d results, want 3 (kernel 64, single 64, kernel 1422): %+v", len(all), all)
	}
	k := all[0]
	if k.Mode != "kernel" || k.Step != step || len(k.Samples) != 3 {
		t.Fatalf("first result %s %s with %d samples, want kernel %s with 3", k.Mode, k.Step, len(k.Samples), step)
	}
	if got := k.Metrics[MDeliveredMpps]; got != (Summary{Median: 2, Min: 1, Max: 9, N: 3}) {
		t.Errorf("kernel over two rounds: %+v, want median 2 of 1, 2, 9", got)
	}
	if rs := []int{k.Samples[0].Round, k.Samples[1].Round, k.Samples[2].Round}; rs[0] != 1 || rs[1] != 1 || rs[2] != 2 {
		t.Errorf("rounds of the kernel's samples %v, want [1 1 2]", rs)
	}
	if s := all[1]; s.Mode != "single" || len(s.Samples) != 1 || s.Error != "connecting: refused" {
		t.Errorf("single: %d samples, error %q; want 1 sample and the second round's error", len(s.Samples), s.Error)
	}
	if o := all[2]; o.Step != other || o.Metrics[MDeliveredMpps].Median != 5 {
		t.Errorf("new step appended as %s with %+v", o.Step, o.Metrics[MDeliveredMpps])
	}
}

func TestRoundsOption(t *testing.T) {
	o := QuickOptions()
	o.ReorderBatches = nil // the in-memory Fig. 7 runs once, not per round
	one := o.Estimate()
	o.Rounds = 3
	if got := o.Estimate(); got != 3*one {
		t.Errorf("estimate with 3 rounds %v, want 3 × %v", got, one)
	}
	for _, n := range []int{-1, 101} {
		o.Rounds = n
		if err := o.fill(); err == nil {
			t.Errorf("%d rounds accepted", n)
		}
	}
	o.Rounds = 0
	if err := o.fill(); err != nil || o.Rounds != 1 {
		t.Errorf("0 rounds: %v, rounds %d; want the default 1", err, o.Rounds)
	}
}

func TestOfferedLoadOptions(t *testing.T) {
	for _, r := range []float64{0, -5, 0.5, math.NaN(), 2e8} {
		for _, field := range []string{"rates", "udp_rates"} {
			o := QuickOptions()
			if field == "rates" {
				o.Rates = []float64{r}
			} else {
				o.UDPRates = []float64{r}
			}
			if err := o.fill(); err == nil {
				t.Errorf("%s %g accepted", field, r)
			}
		}
	}
	o := QuickOptions()
	o.UDPRates = []float64{150e3}
	if err := o.fill(); err != nil {
		t.Errorf("udp_rates 150e3: %v", err)
	}
}

func TestMarkdownRounds(t *testing.T) {
	// Two rounds of two repetitions: the kernel delivers 4 (round 1) and
	// 10 (round 2), microflow 6 and 12: the medians over both rounds are
	// 7 and 9, and the rounds' own ratios 1.5 and 1.2.
	o := DefaultOptions()
	o.Reps, o.Rounds = 2, 2
	r := &Report{Options: o, Machine: Machine{CPUs: 2, GenCPUs: []int{0}}, Modes: []string{"kernel", "microflow"}}
	vals := map[string][]float64{"kernel": {3, 5, 9, 11}, "microflow": {5, 7, 11, 13}}
	for _, mode := range []string{"kernel", "microflow"} {
		res := Result{Mode: mode, Step: Step{Kind: KindUDP, Size: 64, Flows: 1}}
		for i, v := range vals[mode] {
			res.Samples = append(res.Samples, Sample{Metrics: map[string]float64{MDeliveredMpps: v}, Round: 1 + i/2})
		}
		res.summarise()
		r.Results = append(r.Results, res)
	}
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"Medians of 4 repetitions (2 rounds of 2, the modes in turn)",
		"| udp decap size=64 flows=1, peer → container: delivered | 1.29 [1.20–1.50] |",
		"its range over the rounds",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestClientWarnings: a built-in TCP client below 90% of iperf3's median
// in the same mode and step is reported, one at or above it is not, and
// neither is a comparison across modes, directions or with a failed step.
func TestClientWarnings(t *testing.T) {
	res := func(mode, dir, client string, gbps ...float64) Result {
		r := Result{Mode: mode, Step: Step{Kind: KindTCP, Dir: dir, Size: 128 << 10, Flows: 1, Client: client}}
		for _, v := range gbps {
			r.Samples = append(r.Samples, Sample{Metrics: map[string]float64{MDeliveredGbps: v}})
		}
		r.summarise()
		return r
	}
	failed := res("single", DirDecap, ClientIperf3, 9)
	failed.Error = "iperf3: exit status 1"
	ws := clientWarnings([]Result{
		res(ModeKernel, DirDecap, ClientBuiltin, 3.4, 3.5, 2.0), // median 3.4 of iperf3's 4.0: 85%
		res(ModeKernel, DirDecap, ClientIperf3, 4.0, 3.9, 4.1),
		res(ModeKernel, DirEncap, ClientBuiltin, 3.6), // 90% of 4.0: not below
		res(ModeKernel, DirEncap, ClientIperf3, 4.0),
		res("single", DirDecap, ClientBuiltin, 1.0), // iperf3 in this mode failed
		failed,
		res("single", DirEncap, ClientBuiltin, 1.0), // only the kernel's iperf3 ran this step
	})
	if len(ws) != 1 {
		t.Fatalf("%d warnings, want 1 (kernel decap): %q", len(ws), ws)
	}
	if w := ws[0]; !strings.Contains(w, ModeKernel) || !strings.Contains(w, "3.40 Gbit/s, 85% of iperf3's 4.00") {
		t.Errorf("warning %q does not name the mode and the two medians", w)
	}
}
