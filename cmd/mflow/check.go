package main

import (
	"fmt"
	"io"

	"mflow/daemon"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := fs.String("config", "/etc/mflow/mflow.yaml", "configuration `file`")
	ns := fs.String("netns", "", "check the named network `namespace` (/run/netns/NAME) instead of the current one")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mflow check: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "# effective configuration of %s\n%s\n", *path, cfg.Effective())
	var checks []daemon.Check
	enter := func(fn func() error) error { return fn() }
	if *ns != "" {
		if enter, err = daemon.InNamedNetns(*ns); err != nil {
			fmt.Fprintf(stderr, "mflow check: %v\n", err)
			return exitSetup
		}
	}
	if err := enter(func() error { checks = daemon.CheckHost(cfg); return nil }); err != nil {
		fmt.Fprintf(stderr, "mflow check: %v\n", err)
		return exitSetup
	}
	failed := 0
	for _, c := range checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %-20s %s\n", mark, c.Name, c.Detail)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d check(s) failed\n", failed)
		return exitSetup
	}
	fmt.Fprintln(stdout, "all checks passed")
	return exitOK
}
