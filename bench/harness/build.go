package harness

import (
	"runtime/debug"
	"strings"
)

// Build identifies the binary that measured a report: the VCS stamp the
// go command writes into binaries built from a checkout (go build, go
// run; test binaries have none).
type Build struct {
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Main     string `json:"main_module,omitempty"`
}

// readBuild returns the running binary's Build.
func readBuild() Build {
	var b Build
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Main = info.Main.Path
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// describe is the short form used in tables and plots: "1a2b3c4d5e6f",
// "+changes" when the checkout was modified, "unknown" without a stamp.
func (b Build) describe() string {
	if b.Commit == "" {
		return "unknown"
	}
	c := b.Commit[:min(12, len(b.Commit))]
	if b.Modified {
		c += "+changes"
	}
	return strings.TrimSpace(c)
}
