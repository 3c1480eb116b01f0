package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
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
	srv, err := metrics.ListenProbes(cfg.Metrics.Listen, metrics.NewRegistry(d.Snapshot), metrics.Probes{Live: d.Live, Ready: d.Ready})
	if err != nil {
		return nil, err
	}
	log.Info("metrics endpoint", "url", srv.URL())
	if w := metricsExposure(cfg.Metrics.Listen); w != "" {
		log.Warn(w, "listen", cfg.Metrics.Listen)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// metricsExposure returns a warning when the metrics endpoint, which has no
// authentication, is reachable from beyond this host: bound to every
// address, or to one that is not a loopback address. It returns "" for a
// loopback address.
func metricsExposure(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if host == "" {
		return "metrics endpoint listens on every address of the host and has no authentication: set metrics.listen to 127.0.0.1 or to a management address behind a firewall"
	}
	ip, err := netip.ParseAddr(host)
	if host == "localhost" {
		return ""
	}
	if err != nil {
		return "metrics endpoint listens on " + host + ", which may be reachable from other hosts, and has no authentication: firewall it or use a loopback address"
	}
	switch {
	case ip.IsUnspecified():
		return "metrics endpoint listens on every address of the host and has no authentication: set metrics.listen to 127.0.0.1 or to a management address behind a firewall"
	case !ip.IsLoopback():
		return "metrics endpoint is reachable from other hosts and has no authentication: firewall it, or use a loopback address"
	}
	return ""
}
