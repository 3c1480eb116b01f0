package harness

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Step kinds.
const (
	KindUDP     = "udp"     // XDP live-frames UDP stress, peer → container
	KindTCP     = "tcp"     // Go TCP stream, peer → container
	KindLatency = "latency" // paced UDP stress plus request/response probes
	KindReorder = "reorder" // in-memory engine, merger on or off (Fig. 7)
	// KindWireReorder is Fig. 7 on the testbed: UDP stress through the
	// daemon with a given batch size, merger on or off.
	KindWireReorder = "wire-reorder"
)

// Step is one measured configuration of traffic. The zero value is not a
// valid step.
type Step struct {
	Kind string `json:"kind"`
	// Size is the UDP payload in bytes (udp, latency) or the TCP write
	// size (tcp).
	Size int `json:"size"`
	// Flows is the number of distinct flows (UDP source ports).
	Flows int `json:"flows,omitempty"`
	// Rate is the offered load in packets per second (latency; 0 is as
	// fast as possible).
	Rate float64 `json:"rate,omitempty"`
	// Batch and Workers are the engine's (reorder, wire-reorder).
	Batch   int `json:"batch,omitempty"`
	Workers int `json:"workers,omitempty"`
}

// String names the step, e.g. "udp size=64 flows=1".
func (s Step) String() string {
	switch s.Kind {
	case KindTCP:
		return fmt.Sprintf("tcp msg=%d", s.Size)
	case KindLatency:
		return fmt.Sprintf("latency size=%d rate=%.0fkpps", s.Size, s.Rate/1e3)
	case KindReorder:
		return fmt.Sprintf("reorder batch=%d workers=%d", s.Batch, s.Workers)
	case KindWireReorder:
		return fmt.Sprintf("udp size=%d batch=%d workers=%d", s.Size, s.Batch, s.Workers)
	}
	return fmt.Sprintf("udp size=%d flows=%d", s.Size, s.Flows)
}

// Metric names of Result.Metrics and Sample.Metrics.
const (
	MOfferedMpps   = "offered_mpps"     // generator rate: packets it sent per second of its run
	MDeliveredMpps = "delivered_mpps"   // datagrams read by the container's sockets per second
	MDeliveredGbps = "delivered_gbps"   // their UDP payload, Gbit/s (TCP: goodput)
	MLinkRxMpps    = "link_rx_mpps"     // ctr0 rx_packets per second (before the socket)
	MLossPct       = "loss_pct"         // (sent - received) / sent
	MOutOfOrder    = "out_of_order"     // datagrams that arrived after a later one of their flow
	MOutOfOrderPct = "out_of_order_pct" // out_of_order / received
	MDuplicates    = "duplicates"
	MReorderEvents = "reorder_events" // backward jumps of the sequence (Fig. 7)
	MOWDP50        = "owd_p50_us"     // one-way delay generator → container socket
	MOWDP99        = "owd_p99_us"
	MOWDP999       = "owd_p999_us"
	MRTTP50        = "rtt_p50_us" // UDP request/response round trip
	MRTTP99        = "rtt_p99_us"
	MRTTP999       = "rtt_p999_us"
	MCPUBusy       = "cpu_busy_cores" // sum over cores of busy%, in cores
	MMergerWaits   = "merger_waits"
	MMflowDropped  = "mflow_dropped" // mflow's own decap drops (with a reason)
	MMflowRxMpps   = "mflow_rx_mpps" // frames mflow took off its AF_XDP rx rings per second
	MXSKDrops      = "xsk_drops"     // frames the kernel dropped at mflow's AF_XDP socket (rx ring full, no fill frame)
	MWireDropPct   = "wire_drop_pct" // frames the wire refused (host's veth rx ring full), % of sent
)

// metricOrder is the column order of CSV and JSON.
var metricOrder = []string{
	MOfferedMpps, MDeliveredMpps, MDeliveredGbps, MLinkRxMpps, MLossPct, MOutOfOrder, MOutOfOrderPct, MDuplicates, MReorderEvents,
	MOWDP50, MOWDP99, MOWDP999, MRTTP50, MRTTP99, MRTTP999, MCPUBusy, MMergerWaits, MMflowDropped, MMflowRxMpps, MXSKDrops, MWireDropPct,
}

// Sample is one repetition of a step in a mode.
type Sample struct {
	Metrics map[string]float64 `json:"metrics"`
	CPU     []CoreUsage        `json:"cpu,omitempty"`
	Sent    uint64             `json:"sent,omitempty"`
	Recv    uint64             `json:"received,omitempty"`
	Seconds float64            `json:"seconds"`
}

// Result is a step measured in a mode: every repetition and, per metric,
// the median with its spread.
type Result struct {
	Mode    string             `json:"mode"`
	Step    Step               `json:"step"`
	Metrics map[string]Summary `json:"metrics"`
	// CPU is per core the median over the repetitions.
	CPU     []CoreUsage `json:"cpu,omitempty"`
	Samples []Sample    `json:"samples"`
	// Error is set when the step failed; the other fields may be partial.
	Error string `json:"error,omitempty"`
}

// summarise fills Metrics and CPU from Samples.
func (r *Result) summarise() {
	r.Metrics = map[string]Summary{}
	names := map[string]bool{}
	for _, s := range r.Samples {
		for k := range s.Metrics {
			names[k] = true
		}
	}
	var cpus [][]CoreUsage
	for _, s := range r.Samples {
		if len(s.CPU) > 0 {
			cpus = append(cpus, s.CPU)
		}
	}
	for k := range names {
		var xs []float64
		for _, s := range r.Samples {
			if v, ok := s.Metrics[k]; ok {
				xs = append(xs, v)
			}
		}
		r.Metrics[k] = Summarize(xs)
	}
	r.CPU = medianCPU(cpus)
}

// Machine describes where a report was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	Model    string `json:"model"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Hostname string `json:"hostname"`
	// GenCPUs are the CPUs the generator threads were pinned to (on veth,
	// also where the host's receive NAPI runs).
	GenCPUs []int `json:"gen_cpus"`
}

// Report is the outcome of a Run.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Machine  Machine   `json:"machine"`
	Command  string    `json:"command"`
	Options  Options   `json:"options"`
	Modes    []string  `json:"modes"`
	Results  []Result  `json:"results"`
	Warnings []string  `json:"warnings,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// CSVHeader is the header row of WriteCSV.
func CSVHeader() []string {
	h := []string{"mode", "kind", "size", "flows", "rate_pps", "batch", "workers", "reps"}
	for _, m := range metricOrder {
		h = append(h, m, m+"_min", m+"_max")
	}
	return append(h, "cpu_busy_pct_per_core", "error")
}

// WriteCSV writes one row per result: the step, then median, min and max
// of every metric (empty when not measured), the per-core busy percentages
// ("0:95.1 1:40.2") and the error.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader())
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, res := range r.Results {
		s := res.Step
		row := []string{res.Mode, s.Kind, strconv.Itoa(s.Size), strconv.Itoa(s.Flows), f(s.Rate),
			strconv.Itoa(s.Batch), strconv.Itoa(s.Workers), strconv.Itoa(len(res.Samples))}
		for _, m := range metricOrder {
			sum, ok := res.Metrics[m]
			if !ok || sum.N == 0 {
				row = append(row, "", "", "")
				continue
			}
			row = append(row, f(sum.Median), f(sum.Min), f(sum.Max))
		}
		row = append(row, cpuString(res.CPU), res.Error)
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV report: %w", err)
	}
	return nil
}

func cpuString(cs []CoreUsage) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%d:%.0f", c.CPU, c.Busy))
	}
	return strings.Join(parts, " ")
}

// WriteMarkdown writes the results as markdown tables, one per step kind,
// with the median and the spread [min–max] of the main figures and, for
// every mode, the ratio of its delivered rate to the kernel's in the same
// step.
func (r *Report) WriteMarkdown(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), kernel %s, %s; generator pinned to CPU %v. Medians of %d repetitions, [min–max].\n\n",
		m.CPUs, m.Model, m.Kernel, m.Go, m.GenCPUs, r.Options.Reps)
	if r.Command != "" {
		fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	}
	kinds := []string{KindUDP, KindTCP, KindLatency, KindWireReorder, KindReorder}
	for _, kind := range kinds {
		var rows []Result
		for _, res := range r.Results {
			if res.Step.Kind == kind {
				rows = append(rows, res)
			}
		}
		if len(rows) == 0 {
			continue
		}
		ref := func(res Result) (Summary, bool) {
			for _, o := range r.Results {
				if o.Mode == "kernel" && o.Step == res.Step {
					return o.Metrics[primaryMetric(kind)], true
				}
			}
			return Summary{}, false
		}
		switch kind {
		case KindUDP:
			fmt.Fprintln(w, "### UDP stress (XDP live frames, peer → container)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| mode | step | offered Mpps | delivered Mpps | × kernel | Gbit/s | link rx Mpps | loss % | out of order | one-way p50/p99/p99.9 µs | CPU busy % per core |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
		case KindTCP:
			fmt.Fprintln(w, "### TCP stream (Go, peer → container)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| mode | step | Gbit/s | × kernel | CPU busy % per core |")
			fmt.Fprintln(w, "|---|---|---|---|---|")
		case KindLatency:
			fmt.Fprintln(w, "### Latency under load (paced UDP stress + request/response)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| mode | step | delivered Mpps | loss % | one-way p50/p99/p99.9 µs | RTT p50/p99/p99.9 µs | CPU busy % per core |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		case KindWireReorder:
			fmt.Fprintln(w, "### Out-of-order deliveries vs. batch size (UDP through mflow on the testbed, Fig. 7)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| mode | step | delivered Mpps | loss % | out-of-order packets | % of received | backward jumps | merger waits |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		case KindReorder:
			fmt.Fprintln(w, "### Out-of-order deliveries vs. batch size (in-memory engine, Fig. 7)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| mode | step | out-of-order packets | % of received | backward jumps | merger waits | Mpps |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		}
		for _, res := range rows {
			g := func(name string, prec int) string { return fmtSummary(res.Metrics[name], prec) }
			lat := func(a, b, c string) string {
				return fmt.Sprintf("%s / %s / %s", g(a, 0), g(b, 0), g(c, 0))
			}
			ratio := "–"
			if k, ok := ref(res); ok && k.Median > 0 {
				ratio = fmt.Sprintf("%.2f", res.Metrics[primaryMetric(kind)].Median/k.Median)
			}
			name := res.Mode
			if res.Error != "" {
				name += " (error: " + oneLine(res.Error) + ")"
			}
			switch kind {
			case KindUDP:
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step,
					g(MOfferedMpps, 3), g(MDeliveredMpps, 3), ratio, g(MDeliveredGbps, 2), g(MLinkRxMpps, 3),
					g(MLossPct, 1), g(MOutOfOrder, 0), lat(MOWDP50, MOWDP99, MOWDP999), cpuString(res.CPU))
			case KindTCP:
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredGbps, 2), ratio, cpuString(res.CPU))
			case KindLatency:
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredMpps, 3), g(MLossPct, 1),
					lat(MOWDP50, MOWDP99, MOWDP999), lat(MRTTP50, MRTTP99, MRTTP999), cpuString(res.CPU))
			case KindWireReorder:
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredMpps, 3), g(MLossPct, 1),
					g(MOutOfOrder, 0), g(MOutOfOrderPct, 1), g(MReorderEvents, 0), g(MMergerWaits, 0))
			case KindReorder:
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MOutOfOrder, 0), g(MOutOfOrderPct, 1), g(MReorderEvents, 0), g(MMergerWaits, 0), g(MDeliveredMpps, 2))
			}
		}
		fmt.Fprintln(w)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "- warning: %s\n", warn)
	}
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// primaryMetric is the figure a step kind is compared by.
func primaryMetric(kind string) string {
	if kind == KindTCP {
		return MDeliveredGbps
	}
	return MDeliveredMpps
}

// fmtSummary prints "median [min–max]", or "–" without a measurement.
func fmtSummary(s Summary, prec int) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return strconv.FormatFloat(s.Median, 'f', prec, 64)
	}
	return fmt.Sprintf("%s [%s–%s]", strconv.FormatFloat(s.Median, 'f', prec, 64),
		strconv.FormatFloat(s.Min, 'f', prec, 64), strconv.FormatFloat(s.Max, 'f', prec, 64))
}

// modesOf returns the distinct modes of results in order of appearance.
func modesOf(rs []Result) []string {
	var out []string
	for _, r := range rs {
		if !slices.Contains(out, r.Mode) {
			out = append(out, r.Mode)
		}
	}
	return out
}

// Failed reports whether a mode or a step of the report failed.
func (r *Report) Failed() bool {
	if len(r.Warnings) > 0 {
		return true
	}
	for _, res := range r.Results {
		if res.Error != "" {
			return true
		}
	}
	return false
}
