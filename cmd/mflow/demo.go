package main

import (
	"context"
	"fmt"
	"io"

	"mflow/bench/demo"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stdout, stderr, stop := hangups(ctx, stdout, stderr)
	defer stop()
	fs := newFlags("demo", stderr)
	var o demo.Options
	fs.StringVar(&o.Policy, "policy", "microflow", "mflow's steering `policy` (single, flow, pipeline, microflow)")
	fs.IntVar(&o.Workers, "workers", 2, "mflow's worker `count`")
	fs.IntVar(&o.Batch, "batch", 256, "mflow's batch (micro-flow) `size`")
	fs.DurationVar(&o.TCP, "tcp", 0, "TCP stream `duration` (default 3s)")
	fs.DurationVar(&o.UDP, "udp", 0, "UDP stream `duration` (default 2s)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if err := demo.Run(ctx, stdout, o); err != nil {
		fmt.Fprintf(stderr, "mflow demo: %v\n", err)
		if ctx.Err() != nil {
			return exitRuntime
		}
		return exitSetup
	}
	return exitOK
}
