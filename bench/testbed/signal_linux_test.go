package testbed_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

const signalChildEnv = "TESTBED_SIGNAL_CHILD"

// TestCloseOnSignal runs itself as a child that builds a topology,
// registers CloseOnSignal, prints its namespaces and waits; the parent
// sends SIGTERM and checks that the child died of it and left nothing.
func TestCloseOnSignal(t *testing.T) {
	if os.Getenv(signalChildEnv) == "1" {
		signalChild()
		return
	}
	testbedtest.RequirePrivileges(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseOnSignal$", "-test.count=1")
	cmd.Env = append(os.Environ(), signalChildEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var names []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "NS "); ok {
			names = append(names, rest)
		}
		if line == "READY" {
			break
		}
	}
	if len(names) != 3 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child reported namespaces %v", names)
	}
	for _, n := range names {
		if _, err := os.Stat(testbed.NetnsDir + "/" + n); err != nil {
			t.Errorf("child's namespace %s: %v", n, err)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child exit: %v, want killed by SIGTERM", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("child exit status %v, want killed by SIGTERM", ee)
	}
	for _, n := range names {
		if _, err := os.Stat(testbed.NetnsDir + "/" + n); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind: %v", n, err)
		}
	}
}

func signalChild() {
	topo, err := testbed.Build(context.Background(), testbed.Options{Prefix: "tbsig"})
	if err != nil {
		os.Exit(3)
	}
	testbed.CloseOnSignal(topo)
	for _, ns := range topo.Namespaces() {
		os.Stdout.WriteString("NS " + ns.Name + "\n")
	}
	os.Stdout.WriteString("READY\n")
	select {}
}
