package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"mflow/bench/harness"
)

const benchUsage = `usage: mflow bench [flags]

Builds the testbed of docs/ARCHITECTURE.md §8 in network namespaces (as
root), measures each mode with the same traffic and prints a markdown table;
--out DIR also gets report.json, results.csv, report.md and PNG plots.
Progress goes to stderr. Lists are comma-separated; an empty list ("") turns
that sweep off.

`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stdout, stderr, stop := hangups(ctx, stdout, stderr)
	defer stop()
	fs := newFlags("bench", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	d := harness.DefaultOptions()
	quick := fs.Bool("quick", false, "smoke run: kernel vs single vs microflow, both directions, one UDP size, one TCP stream, TCP_RR/UDP_RR, short repetitions (under 60 s on 2 cores); other flags override it")
	out := fs.String("out", "", "write report.json, results.csv, report.md and PNG plots into `DIR`")
	modes := fs.String("modes", strings.Join(d.Modes, ","), "`modes` to compare: native, kernel, kernel-rps, single, flow, pipeline, microflow, ceiling")
	workers := fs.String("workers", ints(d.Workers), "worker `counts` of flow and microflow (one mode per count)")
	batch := fs.Int("batch", d.Batch, "mflow's micro-flow `size`")
	devices := fs.String("devices", "tap", "mflow's network device `types`: tap, veth (AF_XDP into a veth pair); each mflow mode runs once per type")
	transmits := fs.String("transmit", "", "mflow's encap transmit `paths` to compare: auto, socket, af_xdp, tunnel (each mflow mode once per path; \"\": the default)")
	sizes := fs.String("sizes", ints(d.Sizes), "UDP payload `sizes` in bytes (16..1422); the first is the flows sweep's")
	flows := fs.String("flows", ints(d.Flows), "flow `counts`; the first is the size sweep's")
	dirs := fs.String("dirs", strings.Join(d.Dirs, ","), "`directions` to measure: decap (peer → container), encap (container → peer)")
	tcpSizes := fs.String("tcp-sizes", ints(d.TCPSizes), "TCP write `sizes` (\"\": no TCP)")
	tcpStreams := fs.String("tcp-streams", ints(d.TCPStreams), "parallel TCP stream `counts` (one step per count)")
	tcpClient := fs.String("tcp-client", strings.Join(d.TCPClients, ","), "TCP `clients`: builtin (polling sender, sampled content check), iperf3 (from the PATH); both: one step per client")
	rrSizes := fs.String("rr-sizes", ints(d.RRSizes), "request/response `sizes` in bytes (TCP_RR, UDP_RR); the first is also measured under load (\"\": none)")
	rrProtos := fs.String("rr-protos", strings.Join(d.RRProtos, ","), "request/response `protocols`: tcp, udp")
	rrLoads := fs.String("rr-loads", strings.Join(d.RRLoads, ","), "`directions` of the background TCP stream of the loaded request/response steps (\"\": idle only)")
	rates := fs.String("rates", floats(d.Rates), "offered `loads` in packets/s of the latency steps (\"\": none)")
	udpRates := fs.String("udp-rates", "", "offered `loads` in packets/s at which each UDP size is measured again, paced, in both directions: loss at the same offered rate in every mode (\"\": unpaced only)")
	reorder := fs.String("reorder-batches", ints(d.ReorderBatches), "batch `sizes` of the Fig. 7 experiment, in memory and (-reorder-wire) on the testbed (\"\": none)")
	reorderWorkers := fs.Int("reorder-workers", d.ReorderWorkers, "workers of the Fig. 7 experiment")
	reorderWire := fs.Bool("reorder-wire", d.ReorderWire, "run the Fig. 7 batch sizes also through mflow on the testbed (merger off and on, one UDP flow of the first size)")
	duration := fs.Duration("duration", d.Duration, "traffic `duration` of one repetition")
	reps := fs.Int("reps", d.Reps, "repetitions per step (figures are their medians)")
	rounds := fs.Int("rounds", 1, "measure all modes this many times in turn, --reps repetitions each time; figures are the medians over every round (drift of the machine then falls on every mode alike)")
	genCPUs := fs.String("gen-cpus", ints(d.GenCPUs), "`CPUs` of the generator threads (one thread each)")
	receivers := fs.Int("receivers", 0, "SO_REUSEPORT sockets in the container (0: min(max flows, CPUs))")
	pin := fs.Bool("pin", d.Pin, "pin mflow's dispatcher and workers to CPUs other than the generator's when there are enough")
	verbose := fs.Bool("v", false, "show the daemon's warnings")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the harness to `FILE`, and of each mflow mode's daemon process to FILE.<mode> (go tool pprof)")
	spins := fs.String("spin", "", "mflow's steering.spin_us `values` to compare, in µs (each mflow mode once per value; \"\": the default)")
	inlines := fs.String("inline", "", "mflow's steering.inline `values` to compare, in frames, at most --batch (each mflow mode once per value; \"\": the default)")
	tapQueues := fs.String("tap-queues", "", "mflow's steering.tap_queues `values` to compare (each mflow mode once per value; \"\": the default)")
	encapCPUs := fs.String("encap-cpus", "", "mflow's steering.cpus.encap `values` to compare: CPU lists such as 1 or 1,0 (semicolons separate values, an empty value leaves the loops unpinned; each mflow mode once per value; \"\": not pinned)")
	rxRings := fs.String("rx-ring", "", "mflow's uplink.rx_ring `values` to compare, in frames (each mflow mode once per value; \"\": the default)")
	transmitRPS := fs.String("transmit-rps", "", "mflow's vtep.transmit_rps `values` to compare, as --tap-rps")
	tapRPS := fs.String("tap-rps", "", "mflow's steering.tap_rps `values` to compare: off, auto or a CPU range such as 1 or 2-7 (commas separate values; each mflow mode once per value; \"\": the default)")
	wireOffloads := fs.Bool("wire-offloads", false, "build the wire veth with iproute2's default offloads (TSO, GSO and transmit checksum on) instead of all off, as an operator's hand-built overlay has it")
	inProcess := fs.Bool("in-process", false, "run mflow inside the harness's process instead of as its own process (for comparison: it then shares the Go runtime with the load generators)")
	from := fs.String("from", "", "measure nothing: read the report.json `FILE` of an earlier run and write its markdown (and with --out its files and plots) again")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *from != "" {
		return rewriteReport(*from, *out, stdout, stderr)
	}
	o := d
	if *quick {
		o = harness.QuickOptions()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	apply := func(name string, fn func() error) {
		if err == nil && set[name] {
			if e := fn(); e != nil {
				err = fmt.Errorf("-%s: %w", name, e)
			}
		}
	}
	apply("modes", func() error { o.Modes = append([]string{}, splitList(*modes)...); return nil })
	apply("workers", func() (e error) { o.Workers, e = parseInts(*workers); return })
	apply("batch", func() error { o.Batch = *batch; return nil })
	apply("devices", func() error { o.Devices = splitList(*devices); return nil })
	apply("transmit", func() error { o.Transmits = splitList(*transmits); return nil })
	apply("spin", func() (err error) { o.Spins, err = parseInts(*spins); return err })
	apply("inline", func() (err error) { o.Inlines, err = parseInts(*inlines); return err })
	apply("tap-queues", func() (err error) { o.TapQueues, err = parseInts(*tapQueues); return err })
	apply("tap-rps", func() error { o.TapRPS = splitList(*tapRPS); return nil })
	apply("rx-ring", func() (err error) { o.RxRings, err = parseInts(*rxRings); return err })
	apply("encap-cpus", func() error { o.EncapCPUs = strings.Split(*encapCPUs, ";"); return nil })
	apply("transmit-rps", func() error { o.TransmitRPS = splitList(*transmitRPS); return nil })
	apply("sizes", func() (e error) { o.Sizes, e = parseInts(*sizes); return })
	apply("flows", func() (e error) { o.Flows, e = parseInts(*flows); return })
	apply("dirs", func() error { o.Dirs = append([]string{}, splitList(*dirs)...); return nil })
	apply("tcp-sizes", func() (e error) { o.TCPSizes, e = parseInts(*tcpSizes); return })
	apply("tcp-streams", func() (e error) { o.TCPStreams, e = parseInts(*tcpStreams); return })
	apply("tcp-client", func() error { o.TCPClients = splitList(*tcpClient); return nil })
	apply("rr-sizes", func() (e error) { o.RRSizes, e = parseInts(*rrSizes); return })
	apply("rr-protos", func() error { o.RRProtos = splitList(*rrProtos); return nil })
	apply("rr-loads", func() error { o.RRLoads = append([]string{}, splitList(*rrLoads)...); return nil })
	apply("rates", func() (e error) { o.Rates, e = parseFloats(*rates); return })
	apply("udp-rates", func() (e error) { o.UDPRates, e = parseFloats(*udpRates); return })
	apply("reorder-batches", func() (e error) { o.ReorderBatches, e = parseInts(*reorder); return })
	apply("reorder-workers", func() error { o.ReorderWorkers = *reorderWorkers; return nil })
	apply("reorder-wire", func() error { o.ReorderWire = *reorderWire; return nil })
	apply("duration", func() error { o.Duration = *duration; return nil })
	apply("reps", func() error { o.Reps = *reps; return nil })
	apply("rounds", func() error { o.Rounds = *rounds; return nil })
	apply("gen-cpus", func() (e error) { o.GenCPUs, e = parseInts(*genCPUs); return })
	apply("receivers", func() error { o.Receivers = *receivers; return nil })
	apply("pin", func() error { o.Pin = *pin; return nil })
	if err != nil {
		fmt.Fprintf(stderr, "mflow bench: %v\n", err)
		return exitUsage
	}
	if *verbose {
		o.Log = stderr
	}
	o.InProcess = *inProcess
	o.WireOffloads = *wireOffloads
	o.DaemonCPUProfile = *cpuProfile
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "mflow bench: needs root (network namespaces, XDP, AF_XDP)")
		return exitSetup
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "mflow bench: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "mflow bench: %v\n", err)
			return exitRuntime
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(stderr, "mflow bench: estimated %v\n", o.Estimate().Round(time.Second))
	rep, err := harness.Run(ctx, o, stderr)
	if rep == nil {
		fmt.Fprintf(stderr, "mflow bench: %v\n", err)
		return exitUsage
	}
	rep.Command = "mflow bench " + shellJoin(args)
	rep.WriteMarkdown(stdout)
	if *out != "" {
		files, werr := rep.WriteFiles(*out)
		for _, f := range files {
			fmt.Fprintf(stderr, "wrote %s\n", f)
		}
		if werr != nil {
			fmt.Fprintf(stderr, "mflow bench: %v\n", werr)
			return exitRuntime
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "mflow bench: %v\n", err)
		return exitRuntime
	}
	if ctx.Err() != nil {
		// The run was complete, but its report's reader went away (the
		// markdown is cut short; the files of --out are whole).
		fmt.Fprintln(stderr, "mflow bench: interrupted while the report was being written")
		return exitRuntime
	}
	if rep.Failed() {
		fmt.Fprintln(stderr, "mflow bench: some steps failed (see the table)")
		return exitRuntime
	}
	return exitOK
}

// shellJoin joins args into a command line a POSIX shell splits back into
// the same arguments: an empty argument or one with characters the shell
// treats specially is single-quoted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=,./:+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	out := []int{}
	for _, f := range splitList(s) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	out := []float64{}
	for _, f := range splitList(s) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func ints(xs []int) string {
	var p []string
	for _, x := range xs {
		p = append(p, strconv.Itoa(x))
	}
	return strings.Join(p, ",")
}

func floats(xs []float64) string {
	var p []string
	for _, x := range xs {
		p = append(p, strconv.FormatFloat(x, 'g', -1, 64))
	}
	return strings.Join(p, ",")
}

// rewriteReport writes an earlier run's report again: markdown on stdout
// and, with out, its files and plots.
func rewriteReport(path, out string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "mflow bench: %v\n", err)
		return exitUsage
	}
	var rep harness.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintf(stderr, "mflow bench: reading %s: %v\n", path, err)
		return exitUsage
	}
	rep.WriteMarkdown(stdout)
	if out != "" {
		files, err := rep.WriteFiles(out)
		for _, f := range files {
			fmt.Fprintf(stderr, "wrote %s\n", f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mflow bench: %v\n", err)
			return exitRuntime
		}
	}
	return exitOK
}
