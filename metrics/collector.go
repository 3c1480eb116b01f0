package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names. Every name carries the mflow_ prefix.
const (
	NameReceivedPackets           = "mflow_received_packets_total"
	NameReceivedBytes             = "mflow_received_bytes_total"
	NameDeliveredPackets          = "mflow_delivered_packets_total"
	NameDeliveredBytes            = "mflow_delivered_bytes_total"
	NameEncapReceivedPackets      = "mflow_encap_received_packets_total"
	NameEncapReceivedBytes        = "mflow_encap_received_bytes_total"
	NameTransmittedPackets        = "mflow_transmitted_packets_total"
	NameTransmittedBytes          = "mflow_transmitted_bytes_total"
	NameInFlight                  = "mflow_in_flight_packets"
	NameInFlightWindow            = "mflow_in_flight_window_packets"
	NameDropped                   = "mflow_dropped_packets_total"
	NameWorkerPackets             = "mflow_worker_packets_total"
	NameMicroflows                = "mflow_microflows_dispatched_total"
	NameInlineBatches             = "mflow_inline_batches_total"
	NameMergerWaits               = "mflow_merger_waits_total"
	NamePartialChecksums          = "mflow_partial_checksum_accepted_total"
	NameFDBEntries                = "mflow_fdb_entries"
	NameFDBLearnRefused           = "mflow_fdb_learn_refused_total"
	NameNeighbourOverruns         = "mflow_neighbour_overruns_total"
	NameTransmitKernelDrops       = "mflow_transmit_kernel_dropped_packets_total"
	NameXDPPackets                = "mflow_xdp_packets_total"
	NameNetworkDeliveredPackets   = "mflow_network_delivered_packets_total"
	NameNetworkDeliveredBytes     = "mflow_network_delivered_bytes_total"
	NameNetworkTransmittedPackets = "mflow_network_transmitted_packets_total"
	NameNetworkTransmittedBytes   = "mflow_network_transmitted_bytes_total"
	NameNetworkKernelDrops        = "mflow_network_kernel_dropped_packets_total"
	NameUMEMFrames                = "mflow_umem_frames"
	NameUMEMSize                  = "mflow_umem_size_frames"
	NameXSKEvents                 = "mflow_xsk_events_total"
	NameXDPModeInfo               = "mflow_xdp_mode_info"
	NameTransmitPathInfo          = "mflow_transmit_path_info"
)

// UMEM states (the "state" label of mflow_umem_frames) and XSK events (the
// "event" label of mflow_xsk_events_total).
var (
	umemStates  = []string{"free", "fill", "rx", "stages", "tx", "completion"}
	fdbRefusals = []string{"table_full", "rate_limited"}
	xskEvents   = []string{"rx_dropped", "rx_invalid", "tx_invalid", "rx_ring_full", "fill_ring_empty", "tx_ring_empty"}
)

// SnapshotFunc returns the dataplane's counters; it is called once per
// scrape, possibly concurrently with the dataplane and with other scrapes,
// so it must be safe for concurrent use.
type SnapshotFunc func() Snapshot

// Collector is a prometheus.Collector that turns one Snapshot per scrape
// into mflow_ metrics. Create it with NewCollector; it is safe for
// concurrent use.
type Collector struct {
	fn    SnapshotFunc
	descs map[string]*prometheus.Desc
}

// NewCollector returns a collector that calls fn on every scrape.
func NewCollector(fn SnapshotFunc) *Collector {
	c := &Collector{fn: fn, descs: map[string]*prometheus.Desc{}}
	for _, m := range []struct {
		name, help string
		labels     []string
	}{
		{NameReceivedPackets, "Packets taken from the uplink's AF_XDP rx rings (decap input).", nil},
		{NameReceivedBytes, "Bytes of the packets taken from the uplink (outer frames).", nil},
		{NameDeliveredPackets, "Decapsulated frames written to the networks' devices (decap output).", nil},
		{NameDeliveredBytes, "Bytes of the decapsulated frames delivered (inner frames).", nil},
		{NameEncapReceivedPackets, "Frames read from the networks' devices after segmentation (encap input).", nil},
		{NameEncapReceivedBytes, "Bytes of the frames read from the devices (inner frames).", nil},
		{NameTransmittedPackets, "Encapsulated frames handed to the uplink's AF_XDP tx rings (encap output).", nil},
		{NameTransmittedBytes, "Bytes of the encapsulated frames transmitted (outer frames).", nil},
		{NameInFlight, "Packets inside the stages at the scrape (decap: measured from UMEM ownership); received = delivered + dropped + in flight per direction, within the window.", []string{"direction"}},
		{NameInFlightWindow, "How far received and delivered + dropped + in flight may disagree at a scrape while packets move (0 once stopped).", []string{"direction"}},
		{NameDropped, "Packets dropped, by direction (decap, encap) and reason; reasons xsk_rx_dropped, xsk_rx_ring_full and device_kernel_dropped are the kernel's drops before mflow received the frames (not part of conservation).", []string{"direction", "reason"}},
		{NameWorkerPackets, "Packets processed per worker.", []string{"worker"}},
		{NameMicroflows, "Micro-flows (batches) the dispatchers formed, the inline ones included.", nil},
		{NameInlineBatches, "Batches of those processed on the receiving goroutine, no hand-off, nothing being in flight (steering.inline).", nil},
		{NameMergerWaits, "Times the merger waited for the next micro-flow in sequence.", nil},
		{NamePartialChecksums, "Received frames accepted with a partial checksum, outer or inner (the sender's checksum offload).", nil},
		{NameXDPPackets, "Frames the uplink's XDP program gave each verdict (redirected, not_ours, no_socket, fragment, ip_options, peer_not_allowed), counted in the kernel.", []string{"verdict"}},
		{NameNeighbourOverruns, "Times neighbour notifications were lost (netlink socket overrun); each is followed by a resubscription and a full re-read of the table.", nil},
		{NameTransmitKernelDrops, "Packets written into the transmit TAP (tunnel path) that the kernel dropped before the uplink (its rx_dropped, e.g. a CPU's backlog full); a super-frame counts once. Not part of conservation: their frames were counted transmitted.", nil},
		{NameFDBEntries, "Stations (inner MACs) in the forwarding database, learned and static.", nil},
		{NameFDBLearnRefused, "Inner source MACs not learned (their frames were delivered): the network's fdb.max_learned reached, or the VTEP's fdb.learn_rate used up.", []string{"reason"}},
		{NameNetworkDeliveredPackets, "Decapsulated frames delivered per network.", []string{"vni", "device"}},
		{NameNetworkDeliveredBytes, "Bytes of decapsulated frames delivered per network.", []string{"vni", "device"}},
		{NameNetworkTransmittedPackets, "Frames encapsulated and transmitted per network.", []string{"vni", "device"}},
		{NameNetworkTransmittedBytes, "Bytes of frames encapsulated and transmitted per network.", []string{"vni", "device"}},
		{NameNetworkKernelDrops, "Frames from a network's device dropped by the kernel before mflow read them (TAP: its queue to mflow full; veth: its AF_XDP sockets).", []string{"vni", "device"}},
		{NameUMEMFrames, "UMEM frames by owner; the states sum to mflow_umem_size_frames.", []string{"queue", "state"}},
		{NameUMEMSize, "Frames in the UMEM of the AF_XDP socket of a queue.", []string{"queue"}},
		{NameXSKEvents, "Kernel AF_XDP socket statistics (packets that never reached mflow).", []string{"queue", "event"}},
		{NameXDPModeInfo, "The XDP attach mode in use on the uplink (value 1).", []string{"interface", "mode"}},
		{NameTransmitPathInfo, "The encap transmit path in use, vtep.transmit with auto resolved (value 1).", []string{"path"}},
	} {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Snapshot, every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.fn()
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v), labels...)
	}
	counter(NameReceivedPackets, s.Decap.Received.Packets)
	counter(NameReceivedBytes, s.Decap.Received.Bytes)
	counter(NameDeliveredPackets, s.Decap.Delivered.Packets)
	counter(NameDeliveredBytes, s.Decap.Delivered.Bytes)
	counter(NameEncapReceivedPackets, s.Encap.Received.Packets)
	counter(NameEncapReceivedBytes, s.Encap.Received.Bytes)
	counter(NameTransmittedPackets, s.Encap.Delivered.Packets)
	counter(NameTransmittedBytes, s.Encap.Delivered.Bytes)
	gauge(NameInFlight, s.Decap.InFlight, Decap)
	gauge(NameInFlight, s.Encap.InFlight, Encap)
	gauge(NameInFlightWindow, s.Decap.Window, Decap)
	gauge(NameInFlightWindow, s.Encap.Window, Encap)
	// Merge duplicate labels rather than fail the scrape (Check reports them).
	drops := map[[2]string]uint64{}
	order := [][2]string{}
	for _, d := range append(s.Drops, s.KernelDrops()...) {
		k := [2]string{d.Direction, d.Reason}
		if _, ok := drops[k]; !ok {
			order = append(order, k)
		}
		drops[k] += d.Packets
	}
	for _, k := range order {
		counter(NameDropped, drops[k], k[0], k[1])
	}
	for i, n := range s.Workers {
		counter(NameWorkerPackets, n, strconv.Itoa(i))
	}
	counter(NameMicroflows, s.MicroflowsDispatched)
	counter(NameInlineBatches, s.InlineBatches)
	counter(NameMergerWaits, s.MergerWaits)
	counter(NamePartialChecksums, s.PartialChecksums)
	gauge(NameFDBEntries, s.FDB.Entries)
	counter(NameNeighbourOverruns, s.NeighbourOverruns)
	counter(NameTransmitKernelDrops, s.TransmitKernelDrops)
	for _, x := range s.XDP {
		counter(NameXDPPackets, x.Packets, x.Verdict)
	}
	counter(NameFDBLearnRefused, s.FDB.TableFull, fdbRefusals[0])
	counter(NameFDBLearnRefused, s.FDB.RateLimited, fdbRefusals[1])
	for _, n := range s.Networks {
		vni := strconv.FormatUint(uint64(n.VNI), 10)
		counter(NameNetworkDeliveredPackets, n.Delivered.Packets, vni, n.Device)
		counter(NameNetworkDeliveredBytes, n.Delivered.Bytes, vni, n.Device)
		counter(NameNetworkKernelDrops, n.KernelDrops, vni, n.Device)
		counter(NameNetworkTransmittedPackets, n.Transmitted.Packets, vni, n.Device)
		counter(NameNetworkTransmittedBytes, n.Transmitted.Bytes, vni, n.Device)
	}
	for _, u := range s.UMEM {
		q := strconv.Itoa(u.Queue)
		gauge(NameUMEMSize, u.Size, q)
		for i, v := range []uint64{u.Free, u.Fill, u.RX, u.Stages, u.TX, u.Completion} {
			gauge(NameUMEMFrames, v, q, umemStates[i])
		}
	}
	for _, x := range s.XSK {
		q := strconv.Itoa(x.Queue)
		for i, v := range []uint64{x.RxDropped, x.RxInvalid, x.TxInvalid, x.RxRingFull, x.FillRingEmpty, x.TxRingEmpty} {
			counter(NameXSKEvents, v, q, xskEvents[i])
		}
	}
	if s.XDPMode != "" {
		gauge(NameXDPModeInfo, 1, s.Interface, s.XDPMode)
	}
	if s.Transmit != "" {
		gauge(NameTransmitPathInfo, 1, s.Transmit)
	}
}

// NewRegistry returns a registry with a Collector for fn, the Go runtime
// collector and the process collector (CPU, memory, file descriptors).
func NewRegistry(fn SnapshotFunc) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(NewCollector(fn), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
