package main

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-h"}, exitOK, "-quick"},
		{[]string{"--sizes", "64,x"}, exitUsage, `-sizes: parsing "x"`},
		{[]string{"--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"extra"}, exitUsage, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		code := cmdBench(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.out) {
			t.Errorf("bench %v: code %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.out)
		}
	}
	got, err := parseInts(" 1, 2,,8 ")
	if err != nil || !slices.Equal(got, []int{1, 2, 8}) {
		t.Errorf("parseInts = %v, %v", got, err)
	}
	if got, _ := parseInts(""); got == nil || len(got) != 0 {
		t.Errorf("parseInts(\"\") = %#v, want an empty, non-nil list (turns a sweep off)", got)
	}
	if got, _ := parseFloats("5e4,200000"); !slices.Equal(got, []float64{50000, 200000}) {
		t.Errorf("parseFloats = %v", got)
	}
}

// TestShellJoin: the recorded command line splits back into the same
// arguments (checked with the shell itself).
func TestShellJoin(t *testing.T) {
	args := []string{"--modes", "", "--sizes", "64,256", "--out", "dir with space", "--x=it's", "-v"}
	line := shellJoin(args)
	if want := `--modes '' --sizes 64,256 --out 'dir with space' '--x=it'\''s' -v`; line != want {
		t.Errorf("shellJoin = %s, want %s", line, want)
	}
	out, err := exec.Command("sh", "-c", "set -- "+line+`; for a in "$@"; do printf '[%s]' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, a := range args {
		want += "[" + a + "]"
	}
	if string(out) != want {
		t.Errorf("sh splits %s into %s, want %s", line, out, want)
	}
}
