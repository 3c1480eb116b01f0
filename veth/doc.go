// Package veth serves mflow's end of an existing veth pair as a network's
// device, in place of a TAP: AF_XDP sockets on every receive queue in use
// and an XDP program that redirects every frame arriving there to them
// (Linux only). docs/OPERATIONS.md §5 says when to choose it.
package veth
