// Package testbed builds the namespaced network of docs/ARCHITECTURE.md §8 for tests,
// `mflow demo` and `mflow bench`, using only netlink and ioctls (no iproute2,
// no ethtool binary), so that it works from one static CGO_ENABLED=0 binary.
//
// Data flow of a test that uses it:
//
//	NewNS("peer") ─┐                 named network namespaces, bind-mounted
//	NewNS("host") ─┼─ /run/netns/…   under /run/netns like iproute2 does, so
//	NewNS("ctr")  ─┘                 `ip netns` and hooks see (and can delete) them
//	Veth(a, "wire0", b, "uplink0", VethOpts{MTU: 1500, NoOffloads: true})
//	ns.AddAddr / ns.AddNeigh / ns.SetUp        netlink requests sent by a
//	                                           handle opened inside the namespace
//	ns.Do(func() error { … })                  code (sockets, BPF test runs) that
//	                                           must run in the namespace
//	ns.Close()                                 deletes the namespace and its links
//
// [Build] assembles the whole docs/ARCHITECTURE.md §8 topology from these pieces (peer
// with the kernel's VxLAN, host with bridge br42 and either the kernel's
// VxLAN or room for mflow's TAP, container), and [Topology.Close] or
// [CloseOnSignal] removes it. [NS.SetRPS] reaches a namespace's sysfs (for
// the kernel-rps baseline) through a private mount on a throw-away thread.
//
// The caller's goroutine and thread never change namespace: [NS.Do] runs its
// function on a fresh goroutine locked to its OS thread, switches that thread
// and switches it back; if switching back fails the thread is left locked so
// that the Go runtime discards it.
//
// Link names inside the namespaces are fixed (wire0, br42, ctr0, …): the
// namespaces themselves carry a random suffix and links never exist in the
// root namespace, so two test packages running in parallel cannot collide.
package testbed
