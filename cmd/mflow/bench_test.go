package main

import (
	"bytes"
	"context"
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
