//go:build !linux

package spin

// yieldThread: only the goroutine yield elsewhere.
func yieldThread() {}
