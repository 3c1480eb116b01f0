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
//	                  native      plain UDP/TCP between peer and host (no overlay, no container)
//	                  kernel      kernel vxlan42 on the host's bridge
//	                  kernel-rps  kernel, plus RPS on uplink0 and vethctr0 rx-0 to the non-generator CPUs
//	                  single/flow/pipeline/microflow   mflow daemon, a child process of this
//	                              binary started in the host namespace (child.go; --in-process:
//	                              inside this process instead), TAP on br42; --transmit: its
//	                              encap path, auto, socket, af_xdp or tunnel; --spin: its steering.spin_us; --inline: its steering.inline;
//	                              --tap-queues: its steering.tap_queues; --tap-rps, --transmit-rps: its steering.tap_rps, vtep.transmit_rps;
//	                              --encap-cpus: its steering.cpus.encap
//	                  ceiling     AF_XDP on uplink0: receive-and-drop (decap), or transmit
//	                              of pre-built VxLAN frames from one goroutine (encap)
//	  for each step and repetition (both directions: decap = peer → container,
//	  encap = container → peer):
//	    /proc/stat ─┐
//	    udp:  gen.Run (XDP live frames, seq + timestamp stamped, pinned) on the
//	          sender's veth ─► the mode's path ─► SO_REUSEPORT sockets of the
//	          receiver read with recvmmsg: per-flow order, loss, one-way latency
//	    tcp:  traffic.Bulk (polling sender and receiver, sampled content check)
//	          or iperf3 (--tcp-client)
//	    rr:   TCP_RR / UDP_RR from the peer to the container, at idle or under
//	          a Bulk stream in either direction
//	    /proc/stat ─┴─► per-core CPU of the run
//	  testbed removed (also on error and on Ctrl-C: the context closes it)
//	Fig. 7: the dataplane engine in memory (see Reorder) and, with
//	ReorderWire, microflow through the daemon once per batch size with
//	the merger bypassed and once with it (modes microflow-unordered and
//	microflow-merger, step kind wire-reorder), counted at the container.
//	Report ─► markdown (a summary of every mode ÷ kernel, then a table per
//	kind and direction), JSON (with the binary's VCS stamp), CSV, PNG plots.
//
// Every figure of a Result is the median of the repetitions with their
// minimum and maximum (Summary). Delivered means UDP datagrams read by the
// receiving application (the container's sockets for decap, the peer's
// for encap), whose sequence numbers are checked per flow; the receiving
// link's rx_packets counter is reported beside it (link_rx_mpps), so that
// a slow reader shows as the gap between the two. In decap ceiling mode,
// delivered means frames taken off the AF_XDP rx ring on the host.
package harness
