package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"mflow/config"
	"mflow/daemon"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", "/etc/mflow/mflow.yaml", "configuration `file`")
	ns := fs.String("netns", "", "serve the named network `namespace` (/run/netns/NAME) instead of the current one")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mflow run: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	opts := daemon.Options{Logger: log}
	if *ns != "" {
		if opts.Enter, err = daemon.InNamedNetns(*ns); err != nil {
			log.Error("setup failed", "err", err)
			return exitSetup
		}
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		log.Error("setup failed", "err", err)
		if errors.Is(err, daemon.ErrConfig) {
			return exitUsage
		}
		return exitSetup
	}
	stopMetrics, err := serveMetrics(cfg, d, log)
	if err != nil {
		log.Error("metrics endpoint", "err", err)
		d.Close()
		return exitSetup
	}
	defer stopMetrics()
	if err := d.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return exitRuntime
	}
	log.Info("stopped")
	return exitOK
}
