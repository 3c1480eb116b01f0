//go:build tools

// Package pin keeps the pinned dependency versions of CONVENTIONS.md in
// go.mod while the packages that use them are being written. It is never
// built (build tag "tools") and goes away once every module is imported for
// real.
package pin

import (
	_ "github.com/asavie/xdp"
	_ "github.com/cilium/ebpf/link"
	_ "github.com/google/gopacket/layers"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/sys/unix"
	_ "gonum.org/v1/plot/plotter"
)
