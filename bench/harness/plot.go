package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a plot: points with their spread.
type series struct {
	name   string
	pts    plotter.XYs
	lo, hi []float64 // distances below and above Y
}

func (s *series) Len() int                        { return len(s.pts) }
func (s *series) XY(i int) (float64, float64)     { return s.pts[i].X, s.pts[i].Y }
func (s *series) YError(i int) (float64, float64) { return s.lo[i], s.hi[i] }

// figure describes one plot made from the results.
type figure struct {
	file, title, xlabel, ylabel string
	logX                        bool
	// pick selects a result and returns its x, or false.
	pick   func(r Result) (float64, bool)
	metric string
}

// figures are the plots WritePlots makes when the results have them.
func (r *Report) figures() []figure {
	o := r.Options
	first := func(xs []int) int {
		if len(xs) == 0 {
			return 0
		}
		return xs[0]
	}
	return []figure{
		{file: "fig8a_udp_size.png", title: "UDP peer → container: delivered rate vs. payload size (Fig. 8a)", xlabel: "UDP payload (bytes)", ylabel: "delivered Mpps", logX: true,
			metric: MDeliveredMpps, pick: func(res Result) (float64, bool) {
				return float64(res.Step.Size), res.Step.Kind == KindUDP && res.Step.dir() == DirDecap && res.Step.Flows == first(o.Flows)
			}},
		{file: "fig8a_tcp_size.png", title: "TCP peer → container: goodput vs. message size (Fig. 8a)", xlabel: "write size (bytes)", ylabel: "Gbit/s", logX: true,
			metric: MDeliveredGbps, pick: func(res Result) (float64, bool) {
				return float64(res.Step.Size), res.Step.Kind == KindTCP && res.Step.dir() == DirDecap && res.Step.Flows <= 1 && res.Step.Client != ClientIperf3
			}},
		{file: "fig10_flows.png", title: "UDP peer → container: delivered rate vs. number of flows (Fig. 10)", xlabel: "flows", ylabel: "delivered Mpps",
			metric: MDeliveredMpps, pick: func(res Result) (float64, bool) {
				return float64(res.Step.Flows), res.Step.Kind == KindUDP && res.Step.dir() == DirDecap && res.Step.Size == first(o.Sizes)
			}},
		{file: "fig9_latency.png", title: "One-way delay p99 under load (Fig. 9)", xlabel: "offered load (kpps)", ylabel: "p99 one-way delay (µs)",
			metric: MOWDP99, pick: func(res Result) (float64, bool) { return res.Step.Rate / 1e3, res.Step.Kind == KindLatency }},
		{file: "fig7_reorder.png", title: "Reordering without the merger vs. batch size (Fig. 7)", xlabel: "micro-flow batch (packets)", ylabel: "backward jumps of the sequence", logX: true,
			metric: MReorderEvents, pick: func(res Result) (float64, bool) { return float64(res.Step.Batch), res.Step.Kind == KindReorder }},
		{file: "fig7_wire_reorder.png", title: "Reordering at the container without the merger vs. batch size (Fig. 7, testbed)", xlabel: "micro-flow batch (packets)", ylabel: "backward jumps of the sequence", logX: true,
			metric: MReorderEvents, pick: func(res Result) (float64, bool) { return float64(res.Step.Batch), res.Step.Kind == KindWireReorder }},
	}
}

// WritePlots writes the PNG plots that the results support into dir and
// returns their paths. Every point is a median with min–max error bars.
func (r *Report) WritePlots(dir string) ([]string, error) {
	var files []string
	for _, f := range r.figures() {
		var ss []*series
		for _, mode := range modesOf(r.Results) {
			s := &series{name: mode}
			for _, res := range r.Results {
				x, ok := f.pick(res)
				sum, has := res.Metrics[f.metric]
				if res.Mode != mode || !ok || !has || sum.N == 0 {
					continue
				}
				s.pts = append(s.pts, plotter.XY{X: x, Y: sum.Median})
				s.lo = append(s.lo, sum.Median-sum.Min)
				s.hi = append(s.hi, sum.Max-sum.Median)
			}
			if len(s.pts) > 0 {
				sortSeries(s)
				ss = append(ss, s)
			}
		}
		// A plot needs a line: some series with two points or more.
		if !slices.ContainsFunc(ss, func(s *series) bool { return len(s.pts) > 1 }) {
			continue
		}
		path := filepath.Join(dir, f.file)
		if err := drawFigure(path, f, ss); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	for _, f := range r.ratioFigures() {
		path, err := r.writeRatioPlot(dir, f)
		if err != nil {
			return files, err
		}
		if path != "" {
			files = append(files, path)
		}
	}
	if path, err := r.plotWorkers(dir); err != nil {
		return files, err
	} else if path != "" {
		files = append(files, path)
	}
	return files, nil
}

func sortSeries(s *series) {
	idx := make([]int, len(s.pts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if s.pts[a].X < s.pts[b].X {
			return -1
		}
		if s.pts[a].X > s.pts[b].X {
			return 1
		}
		return 0
	})
	pts, lo, hi := make(plotter.XYs, len(idx)), make([]float64, len(idx)), make([]float64, len(idx))
	for i, j := range idx {
		pts[i], lo[i], hi[i] = s.pts[j], s.lo[j], s.hi[j]
	}
	s.pts, s.lo, s.hi = pts, lo, hi
}

func drawFigure(path string, f figure, ss []*series) error {
	p := plot.New()
	p.Title.Text = f.title
	p.X.Label.Text = f.xlabel
	p.Y.Label.Text = f.ylabel
	if f.logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	var args []any
	for _, s := range ss {
		if f.logX {
			for i := range s.pts {
				s.pts[i].X = math.Max(s.pts[i].X, 1)
			}
		}
		args = append(args, s.name, s)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plotting %s: %w", f.file, err)
	}
	for _, s := range ss {
		eb, err := plotter.NewYErrorBars(s)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", f.file, err)
		}
		p.Add(eb)
	}
	if err := p.Save(16*vg.Centimeter, 11*vg.Centimeter, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// plotWorkers plots delivered Mpps at the default UDP step against the
// number of workers of the flow and microflow modes, with the other modes
// as flat lines for reference; "" when fewer than two worker counts ran.
func (r *Report) plotWorkers(dir string) (string, error) {
	o := r.Options
	if len(o.Workers) < 2 || len(o.Sizes) == 0 || len(o.Flows) == 0 {
		return "", nil
	}
	def := Step{Kind: KindUDP, Size: o.Sizes[0], Flows: o.Flows[0]}
	modes, _ := o.Expand()
	lo, hi := float64(slices.Min(o.Workers)), float64(slices.Max(o.Workers))
	byPolicy := map[string]*series{}
	var order []string
	var ss []*series
	for _, m := range modes {
		for _, res := range r.Results {
			sum, ok := res.Metrics[MDeliveredMpps]
			if res.Mode != m.Name || res.Step != def || !ok || sum.N == 0 {
				continue
			}
			if m.Policy == "flow" || m.Policy == "microflow" {
				s := byPolicy[m.Policy]
				if s == nil {
					s = &series{name: m.Policy}
					byPolicy[m.Policy] = s
					order = append(order, m.Policy)
				}
				s.pts = append(s.pts, plotter.XY{X: float64(m.Workers), Y: sum.Median})
				s.lo = append(s.lo, sum.Median-sum.Min)
				s.hi = append(s.hi, sum.Max-sum.Median)
			} else {
				ss = append(ss, &series{name: m.Name, pts: plotter.XYs{{X: lo, Y: sum.Median}, {X: hi, Y: sum.Median}},
					lo: []float64{0, 0}, hi: []float64{0, 0}})
			}
		}
	}
	for _, p := range order {
		sortSeries(byPolicy[p])
		ss = append([]*series{byPolicy[p]}, ss...)
	}
	if len(order) == 0 {
		return "", nil
	}
	path := filepath.Join(dir, "workers.png")
	f := figure{file: "workers.png", title: fmt.Sprintf("UDP %d B: delivered rate vs. workers", o.Sizes[0]), xlabel: "workers", ylabel: "delivered Mpps"}
	return path, drawFigure(path, f, ss)
}

// WriteFiles writes report.json, results.csv, report.md and the plots
// into dir (created if needed) and returns the paths written.
func (r *Report) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	var files []string
	for _, out := range []struct {
		name  string
		write func(f *os.File) error
	}{
		{"report.json", func(f *os.File) error { return r.WriteJSON(f) }},
		{"results.csv", func(f *os.File) error { return r.WriteCSV(f) }},
		{"report.md", func(f *os.File) error { return r.WriteMarkdown(f) }},
	} {
		path := filepath.Join(dir, out.name)
		f, err := os.Create(path)
		if err != nil {
			return files, fmt.Errorf("creating %s: %w", path, err)
		}
		err = out.write(f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", path, cerr)
		}
		if err != nil {
			return files, err
		}
		files = append(files, path)
	}
	plots, err := r.WritePlots(dir)
	return append(files, plots...), err
}

// ratioFigure is a grouped bar chart of every mode ÷ kernel per workload.
type ratioFigure struct {
	file, title string
	pick        func(res Result) (label, metric string, ok bool)
	logY        bool
}

// ratioFigures are the operator's plots: mflow ÷ kernel per direction and
// workload (delivered rate, goodput, transactions/s, RTT p99).
func (r *Report) ratioFigures() []ratioFigure {
	dirFig := func(dir string) ratioFigure {
		return ratioFigure{file: "ratio_" + dir + ".png", title: dirArrow(dir) + ": delivered ÷ kernel (above 1: faster)",
			pick: func(res Result) (string, string, bool) {
				switch {
				case res.Step.Kind == KindUDP && res.Step.dir() == dir:
					return fmt.Sprintf("UDP %dB x%d", res.Step.Size, res.Step.Flows), MDeliveredMpps, true
				case res.Step.Kind == KindTCP && res.Step.dir() == dir:
					l := fmt.Sprintf("TCP x%d", max(res.Step.Flows, 1))
					if res.Step.Client == ClientIperf3 {
						l += " iperf3"
					}
					return l, MDeliveredGbps, true
				}
				return "", "", false
			}}
	}
	rrLabel := func(s Step) string {
		l := fmt.Sprintf("%s %dB", strings.ToUpper(s.Proto), s.Size)
		if s.Load != "" {
			l += " +" + s.Load
		}
		return l
	}
	return []ratioFigure{
		dirFig(DirDecap), dirFig(DirEncap),
		{file: "ratio_rr_tps.png", title: "request/response: transactions/s ÷ kernel (above 1: faster)",
			pick: func(res Result) (string, string, bool) { return rrLabel(res.Step), MTPS, res.Step.Kind == KindRR }},
		{file: "ratio_rr_p99.png", title: "request/response: RTT p99 ÷ kernel (log; above 1: slower)", logY: true,
			pick: func(res Result) (string, string, bool) { return rrLabel(res.Step), MRTTP99, res.Step.Kind == KindRR }},
	}
}

// subtitle names the machine and the commit of a report's plots.
func (r *Report) subtitle() string {
	m := r.Machine
	return fmt.Sprintf("%d CPUs, kernel %s, commit %s", m.CPUs, m.Kernel, r.Build.describe())
}

// writeRatioPlot draws one ratioFigure; "" when the report has nothing
// for it.
func (r *Report) writeRatioPlot(dir string, f ratioFigure) (string, error) {
	var labels []string
	var steps []Step
	var metricOf []string
	for _, res := range r.Results {
		if res.Mode != ModeKernel || res.Error != "" {
			continue
		}
		if l, metric, ok := f.pick(res); ok {
			labels, steps, metricOf = append(labels, l), append(steps, res.Step), append(metricOf, metric)
		}
	}
	var modes []string
	for _, m := range r.Modes {
		if m != ModeKernel && m != ModeCeiling {
			modes = append(modes, m)
		}
	}
	if len(labels) == 0 || len(modes) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = f.title + "\n" + r.subtitle()
	p.Y.Label.Text = "÷ kernel, same run"
	p.NominalX(labels...)
	if f.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: 2}
	}
	w := vg.Points(float64(min(14, 60/len(modes))))
	hi := 1.0
	lo := 1.0
	for i, mode := range modes {
		vals := make(plotter.Values, len(steps))
		for j, s := range steps {
			k, _ := r.ref(ModeKernel, Result{Step: s})
			res, ok := r.ref(mode, Result{Step: s})
			kv, mv := k.Metrics[metricOf[j]], res.Metrics[metricOf[j]]
			if ok && kv.N > 0 && mv.N > 0 && kv.Median > 0 && mv.Median > 0 {
				vals[j] = mv.Median / kv.Median
			} else if f.logY {
				vals[j] = math.NaN() // no point: not measured
			}
			if !math.IsNaN(vals[j]) {
				hi, lo = math.Max(hi, vals[j]), math.Min(lo, math.Max(vals[j], 1e-3))
			}
		}
		if f.logY {
			// Bars start at zero, which a log axis has not: points,
			// shifted per mode like the bars would be.
			var pts plotter.XYs
			for j, v := range vals {
				if !math.IsNaN(v) {
					pts = append(pts, plotter.XY{X: float64(j) + 0.12*(float64(i)-float64(len(modes)-1)/2), Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return "", fmt.Errorf("plotting %s: %w", f.file, err)
			}
			sc.GlyphStyle.Color = plotutil.Color(i)
			sc.GlyphStyle.Shape = plotutil.Shape(i)
			sc.GlyphStyle.Radius = vg.Points(4)
			p.Add(sc)
			p.Legend.Add(mode, sc)
			continue
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return "", fmt.Errorf("plotting %s: %w", f.file, err)
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(modes)-1)/2)
		p.Add(bars)
		p.Legend.Add(mode, bars)
	}
	ref := plotter.NewFunction(func(float64) float64 { return 1 })
	ref.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(ref)
	p.Legend.Add("kernel = 1", ref)
	// Room above the bars for the legend, so that it covers no data.
	if f.logY {
		p.Y.Min, p.Y.Max = math.Min(lo/1.5, 0.5), hi*6
	} else {
		p.Y.Min, p.Y.Max = 0, hi*1.45
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.X.Tick.Label.Rotation = 0.5
	p.X.Tick.Label.XAlign = -1
	path := filepath.Join(dir, f.file)
	width := vg.Length(math.Max(16, 2.2*float64(len(labels))+6)) * vg.Centimeter
	if err := p.Save(width, 12*vg.Centimeter, path); err != nil {
		return "", fmt.Errorf("saving %s: %w", path, err)
	}
	return path, nil
}
