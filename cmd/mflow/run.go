package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"mflow/daemon"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", "/etc/mflow/mflow.yaml", "configuration `file`")
	ns := fs.String("netns", "", "serve the named network `namespace` (/run/netns/NAME) instead of the current one")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mflow run: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	// SIGHUP reloads the configuration. Caught from here on, so that one
	// arriving during setup does not kill the process; it is handled once
	// the daemon runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
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
	reloads := make(chan struct{})
	defer func() { <-reloads }()
	runCtx, stopReloads := context.WithCancel(ctx)
	defer stopReloads()
	go func() {
		defer close(reloads)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				reload(d, *path, log)
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return exitRuntime
	}
	log.Info("stopped")
	return exitOK
}

// reload re-reads the configuration file on SIGHUP and applies what can
// change while running (Daemon.Reload); anything else is refused with a
// log line naming it, and the running configuration stays.
func reload(d *daemon.Daemon, path string, log *slog.Logger) {
	log.Info("SIGHUP: reloading the configuration", "config", path)
	cfg, err := loadConfig(path)
	if err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err)
		return
	}
	changes, err := d.Reload(cfg)
	switch {
	case errors.Is(err, daemon.ErrNotReloadable):
		log.Error("reload refused, keeping the running configuration", "err", err)
	case err != nil:
		log.Error("reload failed, keeping the running configuration", "err", err)
	case len(changes) == 0:
		log.Info("reload: no change")
	default:
		log.Info("configuration reloaded", "changed", strings.Join(changes, ", "))
	}
}
