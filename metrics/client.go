package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are parsed metric families by name.
type Families map[string]*dto.MetricFamily

// URL turns a metrics.listen address ("127.0.0.1:9469") or a URL into the
// URL of /metrics.
func URL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return addr
	}
	return "http://" + addr + "/metrics"
}

// Scrape fetches url (see URL) and parses the Prometheus text format.
func Scrape(ctx context.Context, url string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scraping %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := ParseText(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return f, nil
}

// ParseText parses the Prometheus text exposition format.
func ParseText(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	f, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return Families(f), nil
}

// value returns a sample's value as uint64 (counters and gauges; values
// above 2^53 lose precision in the text format anyway).
func value(m *dto.Metric) uint64 {
	var v float64
	switch {
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	}
	if v < 0 || math.IsNaN(v) {
		return 0
	}
	return uint64(v)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// scalar returns the value of an unlabelled metric, 0 if absent.
func (f Families) scalar(name string) uint64 {
	if mf := f[name]; mf != nil && len(mf.Metric) > 0 {
		return value(mf.Metric[0])
	}
	return 0
}

func (f Families) each(name string, fn func(m *dto.Metric)) {
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			fn(m)
		}
	}
}

// Snapshot rebuilds the Snapshot that a Collector exported; metrics that
// are missing read as zero.
func (f Families) Snapshot() Snapshot {
	var s Snapshot
	s.Decap.Received = Counter{f.scalar(NameReceivedPackets), f.scalar(NameReceivedBytes)}
	s.Decap.Delivered = Counter{f.scalar(NameDeliveredPackets), f.scalar(NameDeliveredBytes)}
	s.Encap.Received = Counter{f.scalar(NameEncapReceivedPackets), f.scalar(NameEncapReceivedBytes)}
	s.Encap.Delivered = Counter{f.scalar(NameTransmittedPackets), f.scalar(NameTransmittedBytes)}
	f.each(NameInFlight, func(m *dto.Metric) {
		switch label(m, "direction") {
		case Decap:
			s.Decap.InFlight = value(m)
		case Encap:
			s.Encap.InFlight = value(m)
		}
	})
	f.each(NameInFlightWindow, func(m *dto.Metric) {
		switch label(m, "direction") {
		case Decap:
			s.Decap.Window = value(m)
		case Encap:
			s.Encap.Window = value(m)
		}
	})
	f.each(NameDropped, func(m *dto.Metric) {
		// The kernel's drops are rebuilt from the XSK events and the
		// networks' kernel drops (Snapshot.KernelDrops).
		if r := label(m, "reason"); !IsKernelDrop(r) {
			s.Drops = append(s.Drops, Drop{Direction: label(m, "direction"), Reason: r, Packets: value(m)})
		}
	})
	sortDrops(s.Drops)
	f.each(NameWorkerPackets, func(m *dto.Metric) {
		i, err := strconv.Atoi(label(m, "worker"))
		if err != nil || i < 0 || i > 1<<16 {
			return
		}
		for len(s.Workers) <= i {
			s.Workers = append(s.Workers, 0)
		}
		s.Workers[i] = value(m)
	})
	s.MicroflowsDispatched = f.scalar(NameMicroflows)
	s.InlineBatches = f.scalar(NameInlineBatches)
	s.MergerWaits = f.scalar(NameMergerWaits)
	s.PartialChecksums = f.scalar(NamePartialChecksums)
	s.FDB.Entries = f.scalar(NameFDBEntries)
	s.NeighbourOverruns = f.scalar(NameNeighbourOverruns)
	s.TransmitKernelDrops = f.scalar(NameTransmitKernelDrops)
	f.each(NameXDPPackets, func(m *dto.Metric) {
		s.XDP = append(s.XDP, XDPVerdict{Verdict: label(m, "verdict"), Packets: value(m)})
	})
	slices.SortFunc(s.XDP, func(a, b XDPVerdict) int { return strings.Compare(a.Verdict, b.Verdict) })
	f.each(NameFDBLearnRefused, func(m *dto.Metric) {
		switch label(m, "reason") {
		case fdbRefusals[0]:
			s.FDB.TableFull = value(m)
		case fdbRefusals[1]:
			s.FDB.RateLimited = value(m)
		}
	})

	nets := map[string]*Network{}
	var netOrder []string
	net := func(m *dto.Metric) *Network {
		k := label(m, "vni") + "/" + label(m, "device")
		n := nets[k]
		if n == nil {
			vni, _ := strconv.ParseUint(label(m, "vni"), 10, 32)
			n = &Network{VNI: uint32(vni), Device: label(m, "device")}
			nets[k] = n
			netOrder = append(netOrder, k)
		}
		return n
	}
	f.each(NameNetworkDeliveredPackets, func(m *dto.Metric) { net(m).Delivered.Packets = value(m) })
	f.each(NameNetworkDeliveredBytes, func(m *dto.Metric) { net(m).Delivered.Bytes = value(m) })
	f.each(NameNetworkTransmittedPackets, func(m *dto.Metric) { net(m).Transmitted.Packets = value(m) })
	f.each(NameNetworkTransmittedBytes, func(m *dto.Metric) { net(m).Transmitted.Bytes = value(m) })
	f.each(NameNetworkKernelDrops, func(m *dto.Metric) { net(m).KernelDrops = value(m) })
	for _, k := range netOrder {
		s.Networks = append(s.Networks, *nets[k])
	}
	slices.SortFunc(s.Networks, func(a, b Network) int { return int(a.VNI) - int(b.VNI) })

	umems := map[int]*UMEM{}
	umem := func(m *dto.Metric) *UMEM {
		q, _ := strconv.Atoi(label(m, "queue"))
		u := umems[q]
		if u == nil {
			u = &UMEM{Queue: q}
			umems[q] = u
		}
		return u
	}
	f.each(NameUMEMSize, func(m *dto.Metric) { umem(m).Size = value(m) })
	f.each(NameUMEMFrames, func(m *dto.Metric) {
		u, v := umem(m), value(m)
		switch label(m, "state") {
		case "free":
			u.Free = v
		case "fill":
			u.Fill = v
		case "rx":
			u.RX = v
		case "stages":
			u.Stages = v
		case "tx":
			u.TX = v
		case "completion":
			u.Completion = v
		}
	})
	for _, u := range umems {
		s.UMEM = append(s.UMEM, *u)
	}
	slices.SortFunc(s.UMEM, func(a, b UMEM) int { return a.Queue - b.Queue })

	xsks := map[int]*XSK{}
	f.each(NameXSKEvents, func(m *dto.Metric) {
		q, _ := strconv.Atoi(label(m, "queue"))
		x := xsks[q]
		if x == nil {
			x = &XSK{Queue: q}
			xsks[q] = x
		}
		v := value(m)
		switch label(m, "event") {
		case "rx_dropped":
			x.RxDropped = v
		case "rx_invalid":
			x.RxInvalid = v
		case "tx_invalid":
			x.TxInvalid = v
		case "rx_ring_full":
			x.RxRingFull = v
		case "fill_ring_empty":
			x.FillRingEmpty = v
		case "tx_ring_empty":
			x.TxRingEmpty = v
		}
	})
	for _, x := range xsks {
		s.XSK = append(s.XSK, *x)
	}
	slices.SortFunc(s.XSK, func(a, b XSK) int { return a.Queue - b.Queue })

	f.each(NameXDPModeInfo, func(m *dto.Metric) {
		if value(m) == 1 {
			s.Interface, s.XDPMode = label(m, "interface"), label(m, "mode")
		}
	})
	f.each(NameTransmitPathInfo, func(m *dto.Metric) {
		if value(m) == 1 {
			s.Transmit = label(m, "path")
		}
	})
	return s
}

// WriteTable prints s as the tables of `mflow stats`, with the result of
// the conservation check, and returns the first write error.
func WriteTable(w io.Writer, s *Snapshot) error {
	var err error
	section := func(rows [][]string) {
		if err != nil || len(rows) == 0 {
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		for _, r := range rows {
			fmt.Fprint(tw, strings.Join(r, "\t")+"\t\n")
		}
		if err = tw.Flush(); err == nil {
			_, err = io.WriteString(w, "\n")
		}
	}
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	mode, uplink := s.XDPMode, s.Interface
	if mode == "" {
		mode = "unknown"
	}
	if uplink == "" {
		uplink = "?"
	}
	tx := s.Transmit
	if tx == "" {
		tx = "unknown"
	}
	if _, err = fmt.Fprintf(w, "uplink %s, XDP mode %s, transmit %s\n\n", uplink, mode, tx); err != nil {
		return err
	}

	rows := [][]string{{"direction", "received pkts", "received bytes", "delivered pkts", "delivered bytes", "dropped", "in flight", "conserved"}}
	for _, dir := range []string{Decap, Encap} {
		f, d := s.Flow(dir), s.Dropped(dir)
		rows = append(rows, []string{dir, u64(f.Received.Packets), u64(f.Received.Bytes), u64(f.Delivered.Packets),
			u64(f.Delivered.Bytes), u64(d), u64(f.InFlight), yes(f.Conserved(d))})
	}
	section(rows)

	rows = [][]string{{"counter", "value"}, {"micro-flows dispatched", u64(s.MicroflowsDispatched)}, {"of them inline", u64(s.InlineBatches)}, {"merger waits", u64(s.MergerWaits)},
		{"partial checksums accepted", u64(s.PartialChecksums)}, {"fdb entries", u64(s.FDB.Entries)},
		{"fdb not learned: table full", u64(s.FDB.TableFull)}, {"fdb not learned: rate limited", u64(s.FDB.RateLimited)},
		{"neighbour notification overruns", u64(s.NeighbourOverruns)}, {"transmit TAP packets the kernel dropped", u64(s.TransmitKernelDrops)}}
	for i, n := range s.Workers {
		rows = append(rows, []string{"worker " + strconv.Itoa(i) + " packets", u64(n)})
	}
	section(rows)

	rows = nil
	if len(s.Drops) > 0 || len(s.XSK) > 0 || len(s.Networks) > 0 {
		rows = [][]string{{"direction", "drop reason", "packets"}}
		ds := slices.Clone(s.Drops)
		sortDrops(ds)
		for _, d := range ds {
			rows = append(rows, []string{d.Direction, d.Reason, u64(d.Packets)})
		}
		for _, d := range s.KernelDrops() {
			rows = append(rows, []string{d.Direction, d.Reason + " (kernel, before mflow)", u64(d.Packets)})
		}
	}
	section(rows)

	rows = nil
	if len(s.Networks) > 0 {
		rows = [][]string{{"vni", "device", "delivered pkts", "delivered bytes", "transmitted pkts", "transmitted bytes", "kernel drops"}}
		for _, n := range s.Networks {
			rows = append(rows, []string{u64(uint64(n.VNI)), n.Device, u64(n.Delivered.Packets), u64(n.Delivered.Bytes),
				u64(n.Transmitted.Packets), u64(n.Transmitted.Bytes), u64(n.KernelDrops)})
		}
	}
	section(rows)

	rows = nil
	if len(s.XDP) > 0 {
		rows = [][]string{{"xdp verdict", "packets"}}
		for _, x := range s.XDP {
			rows = append(rows, []string{x.Verdict, u64(x.Packets)})
		}
	}
	section(rows)

	rows = nil
	if len(s.UMEM) > 0 {
		rows = [][]string{{"umem queue", "size", "free", "fill", "rx", "stages", "tx", "completion", "balanced"}}
		for _, u := range s.UMEM {
			rows = append(rows, []string{strconv.Itoa(u.Queue), u64(u.Size), u64(u.Free), u64(u.Fill), u64(u.RX),
				u64(u.Stages), u64(u.TX), u64(u.Completion), yes(u.Sum() == u.Size)})
		}
	}
	section(rows)

	rows = nil
	if len(s.XSK) > 0 {
		rows = [][]string{{"xsk queue", "rx dropped", "rx invalid", "tx invalid", "rx ring full", "fill ring empty", "tx ring empty"}}
		for _, x := range s.XSK {
			rows = append(rows, []string{strconv.Itoa(x.Queue), u64(x.RxDropped), u64(x.RxInvalid), u64(x.TxInvalid),
				u64(x.RxRingFull), u64(x.FillRingEmpty), u64(x.TxRingEmpty)})
		}
	}
	section(rows)
	return err
}
