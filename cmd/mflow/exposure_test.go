package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mflow/config"
)

func TestMetricsExposure(t *testing.T) {
	for addr, warn := range map[string]bool{
		"127.0.0.1:9469": false, "[::1]:9469": false, "localhost:9469": false,
		"0.0.0.0:9469": true, ":9469": true, "[::]:9469": true, "192.0.2.10:9469": true, "mgmt.example:9469": true,
	} {
		if got := metricsExposure(addr); (got != "") != warn {
			t.Errorf("metricsExposure(%q) = %q, want a warning: %v", addr, got, warn)
		}
	}
	// serveMetrics logs it at start.
	var log bytes.Buffer
	cfg := config.Default()
	cfg.Metrics.Listen = "0.0.0.0:0"
	stop, err := serveMetrics(cfg, nil, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "every address") {
		t.Errorf("no warning logged for metrics.listen 0.0.0.0:0:\n%s", log.String())
	}
}

// TestWritableConfigRefused: check and run refuse a configuration file
// that every user may write, before doing anything with it.
func TestWritableConfigRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mflow.yaml")
	cfg := "uplink: {interface: eth1}\nvtep: {address: 192.0.2.1}\nnetworks: [{vni: 42, device: {name: mflow42}, peers: [192.0.2.2]}]\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check", "run"} {
		var out, errOut bytes.Buffer
		if code := run([]string{cmd, "-config", path}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "writable by every user") {
			t.Errorf("mflow %s with a world-writable config: exit %d, %q; want exit %d saying so", cmd, code, errOut.String(), exitUsage)
		}
	}
}
