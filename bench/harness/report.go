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
	KindUDP     = "udp"     // XDP live-frames UDP stress, in the step's direction
	KindTCP     = "tcp"     // TCP bulk stream(s), in the step's direction
	KindLatency = "latency" // paced UDP stress peer → container plus request/response probes
	// KindRR is request/response like netperf's TCP_RR and UDP_RR: one
	// connection, a request of Size bytes from the peer, a response of
	// Size bytes from the container, one transaction at a time; at idle
	// or under a background TCP stream in direction Load.
	KindRR      = "rr"
	KindReorder = "reorder" // in-memory engine, merger on or off (Fig. 7)
	// KindWireReorder is Fig. 7 on the testbed: UDP stress through the
	// daemon with a given batch size, merger on or off.
	KindWireReorder = "wire-reorder"
)

// Directions of traffic through the host's VTEP.
const (
	DirDecap = "decap" // peer → container: the host decapsulates
	DirEncap = "encap" // container → peer: the host encapsulates
)

// dirArrow names a direction in tables.
func dirArrow(d string) string {
	switch d {
	case DirEncap:
		return "container → peer"
	case DirDecap:
		return "peer → container"
	}
	return d
}

// TCP clients of the TCP steps.
const (
	ClientBuiltin = "builtin" // the harness's own sender and receiver (traffic.Bulk)
	ClientIperf3  = "iperf3"  // iperf3 from the PATH, as a user would run it
)

// Step is one measured configuration of traffic. The zero value is not a
// valid step.
type Step struct {
	Kind string `json:"kind"`
	// Dir is the direction of the traffic (udp, tcp): DirDecap or
	// DirEncap; "" in results written before both were measured means
	// DirDecap.
	Dir string `json:"dir,omitempty"`
	// Size is the UDP payload in bytes (udp, latency) or the TCP write
	// size (tcp).
	Size int `json:"size"`
	// Flows is the number of distinct flows (UDP source ports; TCP:
	// parallel streams).
	Flows int `json:"flows,omitempty"`
	// Client is the TCP client (tcp): ClientBuiltin or ClientIperf3.
	Client string `json:"client,omitempty"`
	// Proto is "tcp" or "udp" (rr).
	Proto string `json:"proto,omitempty"`
	// Load is the direction of the background TCP stream of a loaded rr
	// step, "" at idle.
	Load string `json:"load,omitempty"`
	// Rate is the offered load in packets per second (latency, and udp
	// steps from Options.UDPRates; 0 is as fast as possible).
	Rate float64 `json:"rate,omitempty"`
	// Batch and Workers are the engine's (reorder, wire-reorder).
	Batch   int `json:"batch,omitempty"`
	Workers int `json:"workers,omitempty"`
}

// String names the step, e.g. "udp size=64 flows=1".
func (s Step) String() string {
	switch s.Kind {
	case KindTCP:
		str := fmt.Sprintf("tcp %s msg=%d", s.dir(), s.Size)
		if s.Flows > 1 {
			str += fmt.Sprintf(" streams=%d", s.Flows)
		}
		if s.Client != "" && s.Client != ClientBuiltin {
			str += " client=" + s.Client
		}
		return str
	case KindRR:
		load := "idle"
		if s.Load != "" {
			load = "under " + s.Load + " stream"
		}
		return fmt.Sprintf("%s_rr size=%d %s", s.Proto, s.Size, load)
	case KindLatency:
		return fmt.Sprintf("latency size=%d rate=%.0fkpps", s.Size, s.Rate/1e3)
	case KindReorder:
		return fmt.Sprintf("reorder batch=%d workers=%d", s.Batch, s.Workers)
	case KindWireReorder:
		return fmt.Sprintf("udp size=%d batch=%d workers=%d", s.Size, s.Batch, s.Workers)
	}
	str := fmt.Sprintf("udp %s size=%d flows=%d", s.dir(), s.Size, s.Flows)
	if s.Rate > 0 {
		str += fmt.Sprintf(" rate=%.0fkpps", s.Rate/1e3)
	}
	return str
}

// dir is Dir with the default of results that predate it.
func (s Step) dir() string {
	if s.Dir == "" {
		return DirDecap
	}
	return s.Dir
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
	MRTTP50        = "rtt_p50_us" // request/response round trip (latency, rr)
	MRTTP99        = "rtt_p99_us"
	MRTTP999       = "rtt_p999_us"
	MTPS           = "rr_tps"         // request/response transactions per second
	MRRLost        = "rr_lost"        // UDP_RR requests or responses lost (timed out)
	MLoadGbps      = "load_gbps"      // goodput of the background stream of a loaded rr step
	MCPUBusy       = "cpu_busy_cores" // sum over cores of busy%, in cores
	MMergerWaits   = "merger_waits"
	MMflowDropped  = "mflow_dropped" // mflow's own decap drops (with a reason)
	MMflowRxMpps   = "mflow_rx_mpps" // frames mflow took off its AF_XDP rx rings per second
	MXSKDrops      = "xsk_drops"     // frames the kernel dropped at mflow's AF_XDP socket (rx ring full, no fill frame)
	MWireDropPct   = "wire_drop_pct" // frames the wire refused (host's veth rx ring full), % of sent
	// Frames the kernel dropped in the queue of mflow's network device
	// before mflow read them (a TAP's ring full; the encap direction's
	// loss ahead of the daemon), and packets mflow wrote into the
	// transmit TAP that the kernel dropped before the uplink (mflow modes).
	MDeviceDrops   = "device_kernel_drops"
	MTxKernelDrops = "transmit_kernel_drops"
	// Datagrams the receiving application's own sockets dropped (their
	// receive buffers full: the receiver did not keep up), every mode:
	// loss past the dataplane.
	MRxSocketDrops = "receiver_socket_drops"
	// The uplink XDP program's own counts during the step (mflow modes):
	// frames it redirected to mflow's sockets, frames it passed to the
	// kernel for lack of a socket on their queue, and redirected frames
	// that neither reached mflow's rx rings nor were counted as dropped at
	// its sockets (redirected - received - xsk_drops; 0 when nothing is
	// lost unseen).
	MXDPRedirected  = "xdp_redirected"
	MXDPNoSocket    = "xdp_no_socket"
	MXDPUnaccounted = "xdp_unaccounted"
)

// metricOrder is the column order of CSV and JSON.
var metricOrder = []string{
	MOfferedMpps, MDeliveredMpps, MDeliveredGbps, MLinkRxMpps, MLossPct, MOutOfOrder, MOutOfOrderPct, MDuplicates, MReorderEvents,
	MOWDP50, MOWDP99, MOWDP999, MRTTP50, MRTTP99, MRTTP999, MTPS, MRRLost, MLoadGbps, MCPUBusy, MMergerWaits, MMflowDropped, MMflowRxMpps, MXSKDrops, MWireDropPct,
	MDeviceDrops, MTxKernelDrops, MXDPRedirected, MXDPNoSocket, MXDPUnaccounted, MRxSocketDrops,
}

// Sample is one repetition of a step in a mode.
type Sample struct {
	Metrics map[string]float64 `json:"metrics"`
	CPU     []CoreUsage        `json:"cpu,omitempty"`
	Sent    uint64             `json:"sent,omitempty"`
	Recv    uint64             `json:"received,omitempty"`
	Seconds float64            `json:"seconds"`
	// Round is the round the sample was measured in (Options.Rounds),
	// from 1; 0 when the run had one round.
	Round int `json:"round,omitempty"`
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
	Build    Build     `json:"build"`
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
	h := []string{"mode", "kind", "dir", "client", "proto", "load", "size", "flows", "rate_pps", "batch", "workers", "reps"}
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
		row := []string{res.Mode, s.Kind, s.Dir, s.Client, s.Proto, s.Load, strconv.Itoa(s.Size), strconv.Itoa(s.Flows), f(s.Rate),
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

// WriteMarkdown writes the results as markdown: a summary of every mode
// against the kernel, then one table per step kind and direction with the
// median and the spread [min–max] of the main figures and, for every mode,
// ratios to the kernel's figures in the same step of the same run. What the
// columns mean is written under each table.
func (r *Report) WriteMarkdown(w io.Writer) error {
	m := r.Machine
	reps := fmt.Sprintf("%d repetitions", r.Options.Reps)
	if n := r.Options.Rounds; n > 1 {
		reps = fmt.Sprintf("%d repetitions (%d rounds of %d, the modes in turn)", n*r.Options.Reps, n, r.Options.Reps)
	}
	fmt.Fprintf(w, "Machine: %d CPUs (%s), kernel %s, %s; generator pinned to CPU %v. Commit %s. Medians of %s, [min–max].\n\n",
		m.CPUs, m.Model, m.Kernel, m.Go, m.GenCPUs, r.Build.describe(), reps)
	if r.Command != "" {
		fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	}
	r.writeSummary(w)
	type table struct {
		kind, dir string
	}
	tables := []table{
		{KindUDP, DirDecap}, {KindUDP, DirEncap}, {KindTCP, DirDecap}, {KindTCP, DirEncap},
		{KindRR, ""}, {KindLatency, ""}, {KindWireReorder, ""}, {KindReorder, ""},
	}
	for _, t := range tables {
		var rows []Result
		for _, res := range r.Results {
			if res.Step.Kind == t.kind && (t.dir == "" || res.Step.dir() == t.dir) {
				rows = append(rows, res)
			}
		}
		if len(rows) == 0 {
			continue
		}
		r.writeTable(w, t.kind, t.dir, rows)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "- warning: %s\n", warn)
	}
	return nil
}

// ref returns the result of mode in the same step as res, if any.
func (r *Report) ref(mode string, res Result) (Result, bool) {
	for _, o := range r.Results {
		if o.Mode == mode && o.Step == res.Step && o.Error == "" {
			return o, true
		}
	}
	return Result{}, false
}

// ratio formats a ÷ b of metric name between two results, or "–".
func ratio(a, b Result, name string) string {
	x, okx := a.Metrics[name]
	y, oky := b.Metrics[name]
	if !okx || !oky || x.N == 0 || y.N == 0 || y.Median <= 0 {
		return "–"
	}
	if rs := roundRatios(a, b, name); len(rs) > 1 {
		return fmt.Sprintf("%.2f [%.2f–%.2f]", x.Median/y.Median, slices.Min(rs), slices.Max(rs))
	}
	return fmt.Sprintf("%.2f", x.Median/y.Median)
}

// roundRatios pairs a's and b's samples by round (Options.Rounds) and
// returns, per round that both measured, the ratio of a's median in it to
// b's: how far the comparison moved between rounds. Nil without rounds.
func roundRatios(a, b Result, name string) []float64 {
	perRound := func(r Result) map[int]float64 {
		xs := map[int][]float64{}
		for _, s := range r.Samples {
			if v, ok := s.Metrics[name]; ok && s.Round > 0 {
				xs[s.Round] = append(xs[s.Round], v)
			}
		}
		med := map[int]float64{}
		for k, v := range xs {
			med[k] = Summarize(v).Median
		}
		return med
	}
	ma, mb := perRound(a), perRound(b)
	var rounds []int
	for k := range ma {
		if y, ok := mb[k]; ok && y > 0 {
			rounds = append(rounds, k)
		}
	}
	slices.Sort(rounds)
	var rs []float64
	for _, k := range rounds {
		rs = append(rs, ma[k]/mb[k])
	}
	return rs
}

// lossFloor is the smallest loss percentage a loss ratio uses: below it a
// loss counts as lossFloor, so that two nearly lossless modes compare as
// about 1 and not as a ratio of noise.
const lossFloor = 0.1

func lossRatio(a, b Result) string {
	x, okx := a.Metrics[MLossPct]
	y, oky := b.Metrics[MLossPct]
	if !okx || !oky || x.N == 0 || y.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", max(x.Median, lossFloor)/max(y.Median, lossFloor))
}

func (r *Report) writeTable(w io.Writer, kind, dir string, rows []Result) {
	switch kind {
	case KindUDP:
		tableHead(w, fmt.Sprintf("UDP stress, %s (XDP live frames)", dirArrow(dir)), "mode", "step", "offered Mpps", "delivered Mpps", "× kernel",
			"of ceiling", "loss %", "loss × kernel", "one-way p50/p99/p99.9 µs", "p99 × kernel", "out of order", "Gbit/s", "CPU busy % per core")
	case KindTCP:
		tableHead(w, fmt.Sprintf("TCP stream, %s", dirArrow(dir)), "mode", "step", "Gbit/s", "× kernel", "builtin ÷ iperf3", "CPU busy % per core")
	case KindRR:
		tableHead(w, "Request/response (TCP_RR, UDP_RR; requests peer → container)", "mode", "step", "transactions/s", "× kernel",
			"RTT p50/p99/p99.9 µs", "p50 × kernel", "p99 × kernel", "lost", "background Gbit/s", "CPU busy % per core")
	case KindLatency:
		tableHead(w, "Latency under load (paced UDP stress peer → container + UDP request/response)", "mode", "step", "delivered Mpps", "loss %",
			"one-way p50/p99/p99.9 µs", "RTT p50/p99/p99.9 µs", "RTT p99 × kernel", "CPU busy % per core")
	case KindWireReorder:
		tableHead(w, "Out-of-order deliveries vs. batch size (UDP through mflow on the testbed, Fig. 7)", "mode", "step", "delivered Mpps", "loss %",
			"out-of-order packets", "% of received", "backward jumps", "merger waits")
	case KindReorder:
		tableHead(w, "Out-of-order deliveries vs. batch size (in-memory engine, Fig. 7)", "mode", "step", "out-of-order packets", "% of received",
			"backward jumps", "merger waits", "Mpps")
	}
	for _, res := range rows {
		g := func(name string, prec int) string { return fmtSummary(res.Metrics[name], prec) }
		lat := func(a, b, c string) string {
			return fmt.Sprintf("%s / %s / %s", g(a, 0), g(b, 0), g(c, 0))
		}
		k, hasK := r.ref(ModeKernel, res)
		vsK := func(name string) string {
			if !hasK {
				return "–"
			}
			return ratio(res, k, name)
		}
		name := res.Mode
		if res.Error != "" {
			name += " (error: " + oneLine(res.Error) + ")"
		}
		switch kind {
		case KindUDP:
			ceil := "–"
			if c, ok := r.ref(ModeCeiling, res); ok && res.Mode != ModeCeiling {
				ceil = ratio(res, c, MDeliveredMpps)
			}
			lr := "–"
			if hasK {
				lr = lossRatio(res, k)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step,
				g(MOfferedMpps, 3), g(MDeliveredMpps, 3), vsK(MDeliveredMpps), ceil, g(MLossPct, 1), lr,
				lat(MOWDP50, MOWDP99, MOWDP999), vsK(MOWDP99), g(MOutOfOrder, 0), g(MDeliveredGbps, 2), cpuString(res.CPU))
		case KindTCP:
			vsIperf := "–"
			if res.Step.Client == ClientBuiltin {
				s := res.Step
				s.Client = ClientIperf3
				for _, o := range r.Results {
					if o.Mode == res.Mode && o.Step == s && o.Error == "" {
						vsIperf = ratio(res, o, MDeliveredGbps)
					}
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredGbps, 2), vsK(MDeliveredGbps), vsIperf, cpuString(res.CPU))
		case KindRR:
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MTPS, 0), vsK(MTPS),
				lat(MRTTP50, MRTTP99, MRTTP999), vsK(MRTTP50), vsK(MRTTP99), g(MRRLost, 0), g(MLoadGbps, 2), cpuString(res.CPU))
		case KindLatency:
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredMpps, 3), g(MLossPct, 1),
				lat(MOWDP50, MOWDP99, MOWDP999), lat(MRTTP50, MRTTP99, MRTTP999), vsK(MRTTP99), cpuString(res.CPU))
		case KindWireReorder:
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MDeliveredMpps, 3), g(MLossPct, 1),
				g(MOutOfOrder, 0), g(MOutOfOrderPct, 1), g(MReorderEvents, 0), g(MMergerWaits, 0))
		case KindReorder:
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, res.Step, g(MOutOfOrder, 0), g(MOutOfOrderPct, 1), g(MReorderEvents, 0), g(MMergerWaits, 0), g(MDeliveredMpps, 2))
		}
	}
	fmt.Fprintln(w)
	if text := columnNotes[kind]; text != "" {
		fmt.Fprintln(w, text)
		fmt.Fprintln(w)
	}
}

// tableHead writes a markdown section title and a table's header rows.
func tableHead(w io.Writer, title string, cols ...string) {
	fmt.Fprintf(w, "### %s\n\n| %s |\n|%s\n", title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
}

// columnNotes explain the tables' columns.
var columnNotes = map[string]string{
	KindUDP: "*offered*: packets/s the generator transmitted; *delivered*: datagrams/s read by the receiving sockets " +
		"(the container's for decap, the peer's for encap); *× kernel*: delivered ÷ the `kernel` mode's in the same step; " +
		"*of ceiling*: delivered ÷ the `ceiling` mode's (AF_XDP receive-and-drop for decap, AF_XDP transmit of pre-built frames " +
		"from one goroutine for encap); *loss*: (offered − delivered) ÷ offered; *loss × kernel*: loss ÷ the kernel's loss, " +
		"each counted as at least 0.1 % so that two nearly lossless modes read about 1 (above 1 is worse); *one-way*: generator → " +
		"receiving socket, every 4th datagram; *p99 × kernel*: above 1 is slower; *out of order*: datagrams that arrived after a " +
		"later one of their flow. For mflow modes the JSON and CSV also hold the uplink XDP program's own counts " +
		"(xdp_redirected, xdp_no_socket, xdp_unaccounted = redirected − received − dropped at mflow's sockets); a mode whose " +
		"totals do not balance, or that passed frames to the kernel for lack of a socket, fails. They also hold " +
		"device_kernel_drops (frames the kernel dropped in the queue of mflow's TAP or veth to mflow: where encap loses what " +
		"the daemon never read) and transmit_kernel_drops (packets mflow wrote into its transmit TAP that the kernel dropped).",
	KindTCP: "*Gbit/s*: goodput, bytes received ÷ time from the first received byte to the end of the stream; with the built-in " +
		"client every stream's content is checked against the sent pattern (sampled, see docs), with iperf3 it is iperf3's " +
		"receiver figure; *× kernel*: ÷ the `kernel` mode's in the same step; *builtin ÷ iperf3*: the built-in client's goodput " +
		"÷ iperf3's in the same mode and direction (shown when both clients ran).",
	KindRR: "One connection, one transaction at a time (no pipelining); *transactions/s*: completed request/response pairs per " +
		"second; *RTT*: per transaction, from the request's send call to the response's last byte; *× kernel*: ÷ the `kernel` " +
		"mode's (for RTTs above 1 is slower); *lost*: UDP requests or responses not answered within 100 ms (counted, the client " +
		"goes on); *background*: goodput of the TCP stream that loads the path during loaded steps.",
	KindLatency: "Paced UDP stress peer → container at the step's rate plus UDP request/response probes every 0.8 ms; *RTT p99 × " +
		"kernel*: above 1 is slower.",
}

// writeSummary writes, per direction and workload, every mode's main
// figure as a multiple of the kernel's in the same run: delivered rate
// (UDP), goodput (TCP), transactions/s and RTT p99 (rr).
func (r *Report) writeSummary(w io.Writer) {
	modes := r.Modes
	var others []string
	for _, m := range modes {
		if m != ModeKernel && m != ModeCeiling {
			others = append(others, m)
		}
	}
	if !slices.Contains(modes, ModeKernel) || len(others) == 0 {
		return
	}
	type row struct {
		label string
		kind  string
		s     Step
		name  string
	}
	var rows []row
	for _, res := range r.Results {
		if res.Mode != ModeKernel || res.Error != "" {
			continue
		}
		switch res.Step.Kind {
		case KindUDP:
			rows = append(rows, row{fmt.Sprintf("%s, %s: delivered", res.Step, dirArrow(res.Step.dir())), KindUDP, res.Step, MDeliveredMpps})
			rows = append(rows, row{fmt.Sprintf("%s, %s: loss", res.Step, dirArrow(res.Step.dir())), "loss", res.Step, MLossPct})
		case KindTCP:
			rows = append(rows, row{fmt.Sprintf("%s, %s: goodput", res.Step, dirArrow(res.Step.dir())), KindTCP, res.Step, MDeliveredGbps})
		case KindRR:
			rows = append(rows, row{fmt.Sprintf("%s: transactions/s", res.Step), KindRR, res.Step, MTPS})
			rows = append(rows, row{fmt.Sprintf("%s: RTT p99", res.Step), KindRR, res.Step, MRTTP99})
		}
	}
	if len(rows) == 0 {
		return
	}
	tableHead(w, "Summary: each mode ÷ kernel, same run", append([]string{"workload"}, others...)...)
	for _, rw := range rows {
		k, _ := r.ref(ModeKernel, Result{Step: rw.s})
		cells := make([]string, len(others))
		for i, m := range others {
			res, ok := r.ref(m, Result{Step: rw.s})
			switch {
			case !ok:
				cells[i] = "–"
			case rw.kind == "loss":
				cells[i] = lossRatio(res, k)
			default:
				cells[i] = ratio(res, k, rw.name)
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", rw.label, strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Delivered, goodput and transactions/s: above 1 is better than the kernel. Loss and RTT: above 1 is worse (loss counted as at least 0.1 %).")
	if r.Options.Rounds > 1 {
		fmt.Fprintln(w, "With rounds, [min–max] after a ratio is its range over the rounds (each round's median of the mode ÷ the kernel's in the same round); the ratio itself is of the medians over all rounds, which with several repetitions per round can fall outside that range.")
	}
	fmt.Fprintln(w)
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
	switch kind {
	case KindTCP:
		return MDeliveredGbps
	case KindRR:
		return MTPS
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

// builtinFloor is the share of iperf3's goodput below which the built-in
// TCP client is reported as possibly limiting a step (clientWarnings).
const builtinFloor = 0.9

// clientWarnings compares the two TCP clients where both ran the same
// step in the same mode: a built-in client whose median goodput is below
// builtinFloor of iperf3's may be what limits its TCP steps, which the
// report must say rather than charge to the mode. This is where that
// comparison lives: one run's medians of its rounds, on the machine
// measured, never a timed unit test.
func clientWarnings(results []Result) []string {
	var ws []string
	for _, b := range results {
		if b.Step.Kind != KindTCP || b.Step.Client != ClientBuiltin || b.Error != "" {
			continue
		}
		s := b.Step
		s.Client = ClientIperf3
		for _, i := range results {
			if i.Mode != b.Mode || i.Step != s || i.Error != "" {
				continue
			}
			x, y := b.Metrics[MDeliveredGbps], i.Metrics[MDeliveredGbps]
			if x.N > 0 && y.N > 0 && y.Median > 0 && x.Median < builtinFloor*y.Median {
				ws = append(ws, fmt.Sprintf("%s %s: the built-in TCP client reached %.2f Gbit/s, %.0f%% of iperf3's %.2f in the same step: it may be what limits the built-in client's TCP figures here",
					b.Mode, b.Step, x.Median, 100*x.Median/y.Median, y.Median))
			}
		}
	}
	return ws
}
