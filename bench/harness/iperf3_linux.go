package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"mflow/bench/testbed"
)

// iperf3 runs iperf3 (from the PATH) as the TCP client of a step: a
// one-off server (-s -1) in namespace to, the client in namespace from
// with streams parallel streams (-P) of size-byte writes (-l) for d
// (whole seconds, at least one), and returns the receiver's goodput from
// the client's JSON report (end.sum_received). The processes are started
// from a thread inside each namespace, so they run there.
func iperf3(ctx context.Context, from, to *testbed.NS, addr netip.AddrPort, streams, size int, d time.Duration) (float64, error) {
	secs := max(1, int(math.Round(d.Seconds())))
	port := strconv.Itoa(int(addr.Port()))
	ip := addr.Addr().String()
	var srvOut bytes.Buffer
	srv := exec.CommandContext(ctx, "iperf3", "-s", "-1", "-B", ip, "-p", port)
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := to.Do(srv.Start); err != nil {
		return 0, fmt.Errorf("starting the iperf3 server in %s: %w", to.Name, err)
	}
	defer func() {
		if srv.ProcessState == nil {
			srv.Process.Kill()
			srv.Wait()
		}
	}()
	// The server is ready when it listens; iperf3 has no readiness signal,
	// so the client retries while the connection is refused.
	var out []byte
	var err error
	for attempt := 0; attempt < 60; attempt++ {
		cli := exec.CommandContext(ctx, "iperf3", "-c", ip, "-p", port, "-t", strconv.Itoa(secs),
			"-P", strconv.Itoa(streams), "-l", strconv.Itoa(size), "-J")
		err = from.Do(func() error {
			var e error
			out, e = cli.Output()
			return e
		})
		// iperf3 -J may exit 0 with an error in its report.
		if !strings.Contains(string(out), "Connection refused") || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 client: %w: %s (server: %s)", err, oneLine(iperf3Error(out)), oneLine(srvOut.String()))
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Wait() }()
	select {
	case err := <-srvErr:
		if err != nil {
			return 0, fmt.Errorf("iperf3 server: %w: %s", err, oneLine(srvOut.String()))
		}
	case <-time.After(2 * time.Second):
		// The client's report is complete; a server that lingers in its
		// end-of-test exchange is only stopped.
		srv.Process.Kill()
		<-srvErr
	}
	return parseIperf3(out)
}

// iperf3Error returns the "error" field of an iperf3 JSON report, or the
// output itself.
func iperf3Error(out []byte) string {
	var r struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(out, &r) == nil && r.Error != "" {
		return r.Error
	}
	return string(out)
}
