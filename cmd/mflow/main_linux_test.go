package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bench/harness"
	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/bench/traffic"
)

// TestMain lets a test re-execute this binary as `mflow` itself: with
// MFLOW_TEST_MAIN set, the process runs the command line it holds.
func TestMain(m *testing.M) {
	harness.RunDaemonChild()
	if args := os.Getenv("MFLOW_TEST_MAIN"); args != "" {
		if v := os.Getenv("MFLOW_TEST_MEMLOCK"); v != "" {
			// Both limits, as an unprivileged service's would be.
			n, _ := strconv.ParseUint(v, 10, 64)
			if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintln(os.Stderr, "setrlimit:", err)
				os.Exit(99)
			}
		}
		os.Exit(run(strings.Fields(args), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRunSIGTERM runs `mflow run` as a separate process serving the host
// namespace of a testbed, checks ping through it and `mflow stats` against
// it, sends SIGTERM, and checks that it exits 0, leaves no XDP program on
// the uplink and no device it created, and that its final counters
// conserve packets.
func TestRunSIGTERM(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mft-cmd"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	path := filepath.Join(t.TempDir(), "mflow.yaml")
	cfg := fmt.Sprintf(`
uplink: {interface: %s}
vtep: {address: %s}
networks:
  - vni: %d
    device: {type: tap, name: mflow42, bridge: %s, mtu: %d}
    peers: [%s]
metrics: {listen: "127.0.0.1:0"}
`, testbed.HostUplink, testbed.HostUnderlayIP, testbed.VNI, testbed.Bridge, testbed.OverlayMTU, testbed.PeerUnderlayIP)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path, "-netns", topo.Host.Name}, &out, &errOut); code != exitOK {
		t.Fatalf("mflow check: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != exitSetup {
		t.Fatalf("mflow check outside the namespace (no uplink0): exit %d, want %d", code, exitSetup)
	}
	out.Reset()
	errOut.Reset()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN=run -config "+path+" -netns "+topo.Host.Name)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	// Follow the log: wait for "mflow running", remember the metrics URL,
	// keep everything for the final check.
	var log bytes.Buffer
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, &log))
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var metricsURL string
	urlRE := regexp.MustCompile(`url=http://([0-9.:]+)/metrics`)
	ready := false
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mflow run exited early:\n%s", log.String())
			}
			if m := urlRE.FindStringSubmatch(l); m != nil {
				metricsURL = m[1]
			}
			ready = strings.Contains(l, "mflow running")
		case <-time.After(30 * time.Second):
			t.Fatalf("mflow run not ready after 30s:\n%s", log.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	p, err := traffic.Ping(ctx, topo.Ctr, netip.MustParseAddr("10.42.0.1"), 3, 20*time.Millisecond, 2*time.Second)
	if err != nil || p.Received != 3 {
		t.Fatalf("ping through mflow run: %+v %v", p, err)
	}
	if metricsURL == "" {
		t.Fatalf("no metrics URL in the log:\n%s", log.String())
	}
	if code := run([]string{"stats", "-addr", metricsURL}, &out, &errOut); code != exitOK {
		t.Fatalf("mflow stats: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "decap") {
		t.Fatalf("mflow stats printed no decap counters:\n%s", out.String())
	}
	t.Logf("mflow stats:\n%s", out.String())

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("mflow run after SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("mflow run still running 20s after SIGTERM:\n%s", log.String())
	}

	up, err := topo.Host.Link(testbed.HostUplink)
	if err != nil {
		t.Fatal(err)
	}
	if x := up.Attrs().Xdp; x != nil && x.Attached {
		t.Fatalf("XDP program still attached to %s after exit: %+v", testbed.HostUplink, x)
	}
	if _, err := topo.Host.Link("mflow42"); err == nil {
		t.Fatal("TAP mflow42 still exists after exit")
	}
	// The final log line carries the counters: received = delivered + dropped.
	m := regexp.MustCompile(`decap_received=(\d+) decap_delivered=(\d+) decap_dropped=(\d+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no final counters in the log:\n%s", log.String())
	}
	rcv, _ := strconv.Atoi(m[1])
	dlv, _ := strconv.Atoi(m[2])
	drp, _ := strconv.Atoi(m[3])
	if rcv == 0 || rcv != dlv+drp {
		t.Fatalf("after drain: received %d != delivered %d + dropped %d", rcv, dlv, drp)
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != exitUsage {
		t.Fatalf("no arguments: exit %d, want %d", code, exitUsage)
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != exitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := run([]string{"run", "-config", "/nonexistent/mflow.yaml"}, &out, &errOut); code != exitUsage {
		t.Fatalf("missing config: exit %d, want %d", code, exitUsage)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("uplink: {interface: eth1}\nbogus: 1\n"), 0o600)
	errOut.Reset()
	if code := run([]string{"check", "-config", bad}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "line 2") {
		t.Fatalf("bad config: exit %d, message %q; want exit %d naming line 2", code, errOut.String(), exitUsage)
	}
}

// TestBenchHangups runs `mflow bench` as a separate process whose
// progress goes into a pipe and, once the run is under way, either closes
// the pipe's reading end (as `mflow bench 2>&1 | head` does) or sends
// SIGHUP (a terminal hanging up): the process must end by itself, not by
// the signal, and remove its namespaces. Under nohup a SIGHUP must not
// end it (and SIGINT then does).
func TestBenchHangups(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	for _, how := range []string{"pipe", "sighup", "nohup"} {
		t.Run(how, func(t *testing.T) { benchHangup(t, how) })
	}
}

func benchHangup(t *testing.T, how string) {
	switch {
	case how == "sighup" && signal.Ignored(syscall.SIGHUP):
		t.Skip("this test runs with SIGHUP ignored, which its child would inherit")
	case how == "nohup":
		if _, err := exec.LookPath("nohup"); err != nil {
			t.Skip("needs nohup(1)")
		}
	}
	before := benchNamespaces(t)
	t.Cleanup(func() { // what a failed run left behind
		for _, n := range benchNamespaces(t) {
			if !slices.Contains(before, n) {
				testbed.RemoveNamed(n)
			}
		}
	})
	// 20 repetitions of 2 s: a run that went on after the signal would
	// take 40 s more; one that stops ends within the repetition it is in.
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if how == "nohup" {
		cmd = exec.Command("nohup", os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN=bench --modes single --dirs decap --sizes 64 --flows 1 --tcp-sizes= --rr-sizes= --rates= --reorder-batches= --reorder-wire=false --duration 2s --reps 20 --out "+out)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-waited }) // before the namespaces' sweep
	// Read until the first repetition has started (the testbed and the
	// daemon exist); a run that never gets there is killed, which ends
	// the read.
	stuck := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(r)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "rep 1/20") {
			break
		}
	}
	stuck.Stop()
	if len(seen) == 0 || !strings.Contains(seen[len(seen)-1], "rep 1/20") {
		t.Fatalf("the run never started a repetition:\n%s", strings.Join(seen, "\n"))
	}
	if n := len(benchNamespaces(t)) - len(before); n != 3 {
		t.Fatalf("%d new namespaces during the run, want the testbed's 3", n)
	}
	// Except for the closed pipe, the rest of the output is kept.
	var rest []string
	lines := make(chan string, 1000)
	readDone := make(chan struct{})
	if how != "pipe" {
		go func() {
			defer close(readDone)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}()
	}
	switch how {
	case "pipe":
		r.Close()
	case "sighup":
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	case "nohup":
		// Started with SIGHUP ignored, it must go on through one (start
		// two more repetitions); then Ctrl-C (SIGINT) ends it.
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(15 * time.Second)
		for more := true; more; {
			select {
			case l := <-lines:
				rest = append(rest, l)
				more = !strings.Contains(l, "rep 3/20")
			case <-deadline:
				t.Fatalf("no third repetition within 15 s of a SIGHUP under nohup:\n%s", strings.Join(rest, "\n"))
			}
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatalf("mflow bench still running 30 s after the %s", how)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("mflow bench killed by %v (%s)", ws.Signal(), how)
	}
	if code := cmd.ProcessState.ExitCode(); code != exitRuntime {
		t.Errorf("mflow bench exited %d after the %s, want %d (interrupted)", code, how, exitRuntime)
	}
	if left := benchNamespaces(t); len(left) != len(before) {
		t.Fatalf("namespaces after the run %v, before it %v", left, before)
	}
	if how != "pipe" {
		<-readDone
		for len(lines) > 0 {
			rest = append(rest, <-lines)
		}
		text := strings.Join(rest, "\n")
		if !strings.Contains(text, "context canceled") || strings.Contains(text, "some steps failed") {
			t.Errorf("the output after the %s does not say the run was cancelled, or says a step failed:\n%s", how, text)
		}
	}
	// Interrupted, not failed and not complete: the report written on the
	// way out has the step with fewer than its 20 repetitions (none when
	// the signal came during the first) and no error.
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report after the %s: %v", how, err)
	}
	var rep harness.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Error != "" || len(rep.Results[0].Samples) > 19 {
		t.Fatalf("report after the %s: %d results %+v; want one step with at most 19 repetitions and no error", how, len(rep.Results), rep.Results)
	}
}

// benchNamespaces lists the namespaces named like `mflow bench`'s.
func benchNamespaces(t *testing.T) []string {
	t.Helper()
	names, err := testbed.ListNamed("mfbench-")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestRunAsTheUnit runs `mflow run` under the parts of
// examples/mflow.service that decide what it may change on the host: an
// unprivileged user with the unit's three capabilities, an unlimited
// memlock limit (LimitMEMLOCK=infinity), no new privileges, and /proc/sys
// and /sys read-only (ProtectKernelTunables=yes); not the unit's other
// restrictions (address families, namespaces, device policy, a dynamic
// user). With the default configuration `mflow check` must pass, and the
// daemon must start on the default transmit path (tunnel), forward both
// ways, say what it could not set, and exit 0 on SIGTERM.
func TestRunAsTheUnit(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s(1) (util-linux)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mft-unit"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	// The testbed turns IPv6 off in its namespaces; a host has it on, and
	// new links get an IPv6 link-local address unless told otherwise.
	for _, k := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := topo.Host.Sysctl(k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	dir, bin := nobodyDir(t)
	path := filepath.Join(dir, "mflow.yaml")
	if err := os.WriteFile(path, testbed.MflowConfig(""), 0o644); err != nil { // the defaults
		t.Fatal(err)
	}
	// In a mount namespace of its own: this network namespace's sysfs and
	// /proc/sys, both read-only, and a /dev/net/tun open to everyone (as
	// udev makes it; on some hosts it is root's only); then nobody with
	// the unit's capabilities and memlock limit (where this root may not
	// raise the limit, CAP_IPC_LOCK stands in for it).
	script := `mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 &&
mount -t sysfs -o ro sysfs /sys && mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 99
caps=+net_admin,+net_raw,+bpf
ulimit -l unlimited 2>/dev/null || caps=$caps,+ipc_lock
exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --inh-caps=-all,$caps --ambient-caps=$caps --bounding-set=-all,$caps "$0" -test.run='^$'`
	// First `mflow check`, in the same sandbox: it must pass.
	check := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, bin)
	check.Env = append(os.Environ(), "MFLOW_TEST_MAIN=check -config "+path)
	var checkOut bytes.Buffer
	check.Stdout, check.Stderr = &checkOut, &checkOut
	if err := topo.Host.Do(check.Run); err != nil {
		t.Fatalf("mflow check as the unit runs it: %v\n%s", err, checkOut.String())
	}
	t.Logf("mflow check:\n%s", checkOut.String())
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, bin)
	cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN=run -config "+path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Started from a thread in the host namespace, the child is born there.
	if err := topo.Host.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var log bytes.Buffer
	var logMu sync.Mutex
	// The log is kept whole; lines go to the wait below while it waits
	// and are dropped when nobody does, so that the reader never blocks.
	lines := make(chan string, 100)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	logText := func() string { logMu.Lock(); defer logMu.Unlock(); return log.String() }
	for ready := false; !ready; {
		select {
		case l := <-lines:
			ready = strings.Contains(l, "mflow running")
		case <-logDone:
			if strings.Contains(logText(), "takes no GSO over UDP tunnels") {
				t.Skipf("this kernel has no tunnel transmit path:\n%s", logText())
			}
			t.Fatalf("mflow run exited as the unit runs it:\n%s", logText())
		case <-time.After(30 * time.Second):
			t.Fatalf("mflow run not ready after 30s:\n%s", logText())
		}
	}
	if strings.Contains(logText(), "takes no GSO over UDP tunnels") {
		t.Skipf("this kernel has no tunnel transmit path:\n%s", logText())
	}
	p, err := traffic.Ping(ctx, topo.Ctr, netip.MustParseAddr("10.42.0.1"), 3, 20*time.Millisecond, 2*time.Second)
	if err != nil || p.Received != 3 {
		t.Fatalf("ping through mflow run as the unit runs it: %+v %v\n%s", p, err, logText())
	}
	// The transmit TAP is up without an IPv6 address (so the host sends
	// no router solicitations out of it) although disable_ipv6 could not
	// be written.
	var v6 []netlink.Addr
	err = topo.Host.Do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "mfx") {
				a, err := netlink.AddrList(l, netlink.FAMILY_V6)
				v6 = append(v6, a...)
				return err
			}
		}
		return errors.New("no transmit TAP (mfx…) in the host namespace")
	})
	if err != nil || len(v6) != 0 {
		t.Errorf("transmit TAP's IPv6 addresses %v (%v), want none", v6, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-logDone: // the log is read to its end before Wait closes it
	case <-time.After(20 * time.Second):
		t.Fatalf("mflow run still running 20 s after SIGTERM:\n%s", logText())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mflow run after SIGTERM: %v\n%s", err, logText())
	}
	if !strings.Contains(logText(), `msg="transmit path" path=tunnel`) {
		t.Errorf("not on the tunnel path as the unit runs it:\n%s", logText())
	}
	// transmit_rps auto cannot write the RPS masks into a read-only /sys,
	// and says so.
	if !strings.Contains(logText(), "/sys is read-only here") {
		t.Errorf("the log does not say what could not be set on a read-only /sys:\n%s", logText())
	}
	t.Logf("log:\n%s", logText())
}

// TestBenchReportReaderGone runs a short `mflow bench` whose stdout (the
// markdown report) nobody reads, as `mflow bench | head -1` after head
// has exited: the run completes, its --out files are whole, and the exit
// status says the report was cut short.
func TestBenchReportReaderGone(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN=bench --modes single --dirs decap --sizes 64 --flows 1 --tcp-sizes= --rr-sizes= --rates= --reorder-batches= --reorder-wire=false --duration 200ms --reps 1 --out "+out)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone before the first write
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-waited
		t.Fatalf("mflow bench still running after 60 s:\n%s", errOut.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("mflow bench killed by %v:\n%s", ws.Signal(), errOut.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitRuntime || !strings.Contains(errOut.String(), "interrupted while the report was being written") {
		t.Fatalf("exit %d, want %d with a message that the report was cut short:\n%s", code, exitRuntime, errOut.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep harness.Report
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Results) != 1 || len(rep.Results[0].Samples) != 1 || rep.Results[0].Error != "" {
		t.Fatalf("report.json: %v, %+v; want the step with its one repetition", err, rep.Results)
	}
}
