// Package harness is `mflow bench`: it measures mflow against the kernel's
// VxLAN side by side on the namespaced testbed of docs/ARCHITECTURE.md §8 and reproduces
// the shape of the paper's figures (message size, Fig. 8a; batch size vs.
// out-of-order deliveries without the merger, Fig. 7; latency under load,
// Fig. 9; number of flows, Fig. 10; workers 1..N).
//
// Data flow of one Run:
//
//	Options ─► Plan: modes × steps × repetitions
//	for each mode:  testbed.Build (fresh namespaces) ─► mode setup
//	                  native      plain UDP/TCP peer → host (no overlay, no container)
//	                  kernel      kernel vxlan42 on the host's bridge
//	                  kernel-rps  kernel, plus RPS on uplink0 rx-0 to the non-generator CPUs
//	                  single/flow/pipeline/microflow   in-process mflow daemon (TAP on br42)
//	                  ceiling     AF_XDP receive-and-drop on uplink0 (no container)
//	  for each step and repetition:
//	    /proc/stat ─┐
//	    gen.Run in ns peer (XDP live frames, seq + timestamp stamped, pinned)
//	      └─► wire0 ═ uplink0 ─► mode's decap path ─► ctr0 ─► SO_REUSEPORT
//	          sockets read with recvmmsg: per-flow order, loss, one-way latency
//	    /proc/stat ─┴─► per-core CPU of the run
//	  testbed removed (also on error and on Ctrl-C: the context closes it)
//	Fig. 7: the dataplane engine in memory (see Reorder) and, with
//	ReorderWire, microflow through the daemon once per batch size with
//	the merger bypassed and once with it (modes microflow-unordered and
//	microflow-merger, step kind wire-reorder), counted at the container.
//	Report ─► markdown table, JSON, CSV, PNG plots.
//
// Every figure of a Result is the median of the repetitions with their
// minimum and maximum (Summary). Delivered at the container means: UDP
// datagrams read by the receiving application in ns ctr (sockets bound to
// 10.42.0.2), whose sequence numbers are checked per flow; the ctr0 link's
// rx_packets counter is reported beside it (link_rx_mpps), so that a slow
// Go reader shows as the gap between the two. In ceiling mode, delivered
// means frames taken off the AF_XDP rx ring on the host.
package harness
