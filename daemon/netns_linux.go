package daemon

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNamedNetns returns an Options.Enter function that runs its argument on
// a locked OS thread switched into the named network namespace (as made by
// `ip netns add`, under /run/netns), so that one daemon can serve a
// namespace other than its own. The thread is switched back afterwards; if
// that fails it stays locked, and Go discards it when the goroutine ends.
func InNamedNetns(name string) (func(func() error) error, error) {
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
