//go:build !linux

package tap

// open returns ErrUnsupported: TAP devices are Linux's here.
func open(Options) (*Device, error) { return nil, ErrUnsupported }
