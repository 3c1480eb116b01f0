package daemon

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNamedNetns is InNamedNetns on Linux.
func inNamedNetns(name string) (func(func() error) error, error) {
	target, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	return func(fn func() error) error {
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				done <- fmt.Errorf("open current network namespace: %w", err)
				return // stays locked: the thread is discarded
			}
			defer orig.Close()
			if err := netns.Set(target); err != nil {
				done <- fmt.Errorf("enter network namespace %s: %w", name, err)
				runtime.UnlockOSThread()
				return
			}
			ferr := fn()
			if err := netns.Set(orig); err != nil {
				done <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", name, err))
				return
			}
			runtime.UnlockOSThread()
			done <- ferr
		}()
		return <-done
	}, nil
}
