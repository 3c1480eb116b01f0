package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
)

// runUnprivileged runs `mflow run` in the host namespace of topo as the
// user nobody with exactly caps (ambient capabilities) and, when memlock
// is not 0, that RLIMIT_MEMLOCK, and returns its exit code and log.
func runUnprivileged(t *testing.T, topo *testbed.Topology, caps []uintptr, memlock uint64) (int, string) {
	t.Helper()
	dir, bin := nobodyDir(t)
	path := filepath.Join(dir, "mflow.yaml")
	if err := os.WriteFile(path, testbed.MflowConfig("policy: single"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN=run -config "+path)
	if memlock != 0 {
		cmd.Env = append(cmd.Env, "MFLOW_TEST_MEMLOCK="+strconv.FormatUint(memlock, 10))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, AmbientCaps: caps}
	var log bytes.Buffer
	cmd.Stderr, cmd.Stdout = &log, &log
	// Started from a thread in the host namespace, the child is born there.
	if err := topo.Host.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), log.String()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("mflow run as nobody still running after 30s:\n%s", log.String())
	}
	return 0, ""
}

// nobodyDir returns a directory that the user nobody can reach, removed
// at the end of the test, holding a copy of this test binary (bin).
func nobodyDir(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mflow-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "mflow.test")
	if err := copyFile(os.Args[0], bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// TestRunPrivilegeMessages: started without a capability it needs, or
// with a memlock limit too low for its UMEM and without CAP_IPC_LOCK,
// `mflow run` fails with exit code 3 and a message that names what is
// missing and how to get it, not a misleading guess.
func TestRunPrivilegeMessages(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mft-priv"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	const netAdmin, netRaw, ipcLock, bpf = unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_IPC_LOCK, unix.CAP_BPF
	for _, tc := range []struct {
		name    string
		caps    []uintptr
		memlock uint64
		want    []string
		wantNot []string
	}{
		{"no CAP_BPF", []uintptr{netAdmin, netRaw}, 0, []string{`err="setup failed: the process lacks CAP_BPF`}, []string{"MEMLOCK may be too low"}},
		{"no CAP_NET_ADMIN", []uintptr{netRaw, bpf}, 0, []string{"lacks CAP_NET_ADMIN"}, []string{"MEMLOCK may be too low", "CAP_BPF"}},
		{"no CAP_NET_RAW", []uintptr{netAdmin, bpf}, 0, []string{"lacks CAP_NET_RAW"}, []string{"CAP_BPF", "CAP_NET_ADMIN"}},
		{"8 MiB memlock", []uintptr{netAdmin, netRaw, bpf}, 8 << 20, []string{`err="setup failed: RLIMIT_MEMLOCK (8 MiB) is too low`, "LimitMEMLOCK=infinity", "CAP_IPC_LOCK", "register umem"}, nil},
		{"8 MiB memlock with CAP_IPC_LOCK", []uintptr{netAdmin, netRaw, bpf, ipcLock}, 8 << 20, []string{"AF_XDP socket bound"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, log := runUnprivileged(t, topo, tc.caps, tc.memlock)
			if tc.want[0] == "AF_XDP socket bound" {
				// CAP_IPC_LOCK exempts the UMEM from the limit; what
				// happens next (a TAP: /dev/net/tun may not be open to
				// nobody here) does not matter.
				if !strings.Contains(log, tc.want[0]) {
					t.Errorf("exit %d, the socket was not bound:\n%s", code, log)
				}
				return
			}
			if code != exitSetup {
				t.Errorf("exit %d, want %d", code, exitSetup)
			}
			for _, w := range tc.want {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(log, w) {
					t.Errorf("log has %q:\n%s", w, log)
				}
			}
			t.Log(strings.TrimSpace(log))
		})
	}
}
