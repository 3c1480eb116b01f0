// Package gen is a UDP stress generator that needs neither pktgen nor a
// traffic tool: an XDP program, run by the kernel through BPF_PROG_TEST_RUN
// with BPF_F_TEST_XDP_LIVE_FRAMES, returns XDP_TX for a pre-built frame, so
// the kernel transmits it out of the given interface (a veth end in a test
// namespace) at several million packets per second.
//
// Data flow of one [Run]:
//
//	caller's frame (e.g. from BuildFrame: a whole VxLAN-encapsulated frame)
//	  └─ BPF_PROG_TEST_RUN, live frames, ctx {data_end: len, ingress_ifindex: ifname}
//	       run on a thread inside the interface's namespace, Repeat = packets per chunk
//	       └─ kernel page pool: each page is initialised from the frame once and reused
//	            └─ XDP program, once per packet:
//	                 seq := atomic fetch-add of a counter in a map
//	                 seq >= limit?  XDP_DROP (see below)
//	                 [Rate: spin on bpf_ktime_get_ns until base + seq/Rate]
//	                 write seq (8 bytes, big-endian) at SeqOffset
//	                 [write bpf_ktime_get_ns() (8 bytes, big-endian) at TimeOffset]
//	                 write flow seq%len(Flows): one 16-bit value at each FlowOffsets[j]
//	                 XDP_TX ── redirected by the test runner to ifname's ndo_xdp_xmit
//	                              └─ veth: into the peer's rx ring, NAPI on the same CPU
//
// Sequence numbers are exact and contiguous: the counter lives in a
// one-element array map and is taken with an atomic fetch-and-add, so
// several generator threads (Options.CPUs) share one program and never wait
// for each other. cilium/ebpf's Program.Run restarts an interrupted test
// run from scratch (EINTR), which would send more than asked; the program
// therefore drops every packet whose sequence number reaches the limit
// (Count), and a thread stops once the counter has reached it. A packet is
// only counted as sent when the program returned XDP_TX for it; whether the
// driver then accepted it shows in the link statistics that Stats reports.
//
// Pacing (Options.Rate) is absolute, not per chunk: packet s is due at
// base + s/Rate, the program spins (bounded, about a millisecond) until
// then, and a thread further ahead sleeps first, so errors do not add up.
// Frames reach the driver per live-frames batch, so a paced run defaults
// to small batches. Timestamps (Options.TimeOffset) are CLOCK_MONOTONIC
// nanoseconds taken just before the packet is handed on; a receiver on the
// same machine gets one-way latency from its own monotonic clock.
//
// Checksums: the program rewrites bytes after the frame was built, without
// touching any checksum. The IPv4 header checksums stay valid (addresses
// and lengths never change). UDP checksums must be zero (allowed for IPv4,
// and RFC 7348 recommends zero for VxLAN's outer UDP), which [BuildFrame]
// does for both the outer and the inner UDP header; a caller-built frame
// with a non-zero UDP checksum covering a rewritten field will be dropped
// by the receiver as corrupt.
//
// The program is assembled for each Run with cilium/ebpf's asm package, its
// offsets and flow count built in as constants; no clang or generated files
// are needed.
//
// Receiving side: veth only accepts XDP frames (ndo_xdp_xmit) when the
// receiving end runs NAPI, that is when an XDP program is attached to it or
// GRO is on; otherwise every frame is discarded without being counted
// anywhere, and Run returns [ErrNothingTransmitted]. [AttachPass] attaches
// a do-nothing XDP_PASS program for baselines without one. The receiving queue is the generating CPU modulo
// the receiver's queue count (veth_select_rxq), so pin generator threads
// with Options.CPUs to choose queues.
//
// Measured rates, and why the program is assembled at run time:
// docs/DECISIONS.md.
package gen
