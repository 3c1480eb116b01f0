package gen

import (
	"context"
	"io"
)

// XDP verdicts (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// Run transmits frame out of ifname (in namespace ns; nil, not a nil
// *testbed.NS, means the caller's) as o says, and reports what it sent.
// It returns when Count packets are sent, when ctx is done (then with a nil
// error: stopping is the normal end of an unbounded run) or on the first
// error. The kernel copies the frame once per page; Run does not modify it.
// Safe for concurrent use (each Run loads its own program). On systems
// other than Linux it returns ErrUnsupported.
func Run(ctx context.Context, ns Namespace, ifname string, frame []byte, o Options) (Stats, error) {
	return run(ctx, ns, ifname, frame, o)
}

// AttachPass attaches an XDP program that passes every packet to ifname in
// ns (nil: the caller's namespace), which makes a veth end run NAPI and so
// accept frames sent with XDP_TX/redirect from its peer. Close detaches it;
// it is also detached when the process exits (bpf_link).
func AttachPass(ns Namespace, ifname string) (io.Closer, error) {
	return attachVerdict(ns, ifname, xdpPass)
}

// AttachDrop is AttachPass with a program that drops every packet: the
// receiver's cheapest possible work, for measuring the generator's ceiling.
func AttachDrop(ns Namespace, ifname string) (io.Closer, error) {
	return attachVerdict(ns, ifname, xdpDrop)
}
