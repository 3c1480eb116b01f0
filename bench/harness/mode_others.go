//go:build !linux

package harness

import "context"

func runMode(ctx context.Context, o *Options, m Mode, p *progress) ([]Result, error) {
	return []Result{{Mode: m.Name, Error: ErrUnsupported.Error()}}, ErrUnsupported
}
