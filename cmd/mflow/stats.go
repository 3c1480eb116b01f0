package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"mflow/config"
	"mflow/daemon"
	"mflow/metrics"
)

func cmdStats(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stats", stderr)
	addr := fs.String("addr", config.DefaultMetricsAddr, "metrics endpoint `host:port` of the daemon")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fam, err := metrics.Scrape(ctx, metrics.URL(*addr))
	if err != nil {
		fmt.Fprintf(stderr, "mflow stats: %v\n", err)
		return exitRuntime
	}
	s := fam.Snapshot()
	if err := metrics.WriteTable(stdout, &s); err != nil {
		fmt.Fprintf(stderr, "mflow stats: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// serveMetrics starts the /metrics endpoint of d when the config enables
// it, and returns the function that stops it.
func serveMetrics(cfg *config.Config, d *daemon.Daemon, log *slog.Logger) (stop func(), err error) {
	if !cfg.Metrics.Enabled() {
		return func() {}, nil
	}
	srv, err := metrics.Listen(cfg.Metrics.Listen, metrics.NewRegistry(d.Snapshot))
	if err != nil {
		return nil, err
	}
	log.Info("metrics endpoint", "url", srv.URL())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
