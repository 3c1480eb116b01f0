package testbed

import (
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// CloseOnSignal makes a command clean up when it is interrupted: on the
// first SIGINT or SIGTERM (or the signals given) it calls c.Close (a
// *Topology, an *NS), then restores the signal's default action and sends
// the signal to the process again, so that the process ends as it would
// have without the handler (killed by that signal). stop unregisters the
// handler without closing anything; call it (e.g. deferred) once c has
// been closed normally. Safe for concurrent use.
func CloseOnSignal(c io.Closer, sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ch := make(chan os.Signal, 1)
	quit := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			c.Close()
			signal.Reset(sig)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Signal(sig)
			}
		case <-quit:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
		})
	}
}
