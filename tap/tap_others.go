//go:build !linux

package tap

// Device is an open TAP device; on this platform Open always fails.
type Device struct{}

// Open returns ErrUnsupported on this platform.
func Open(o Options) (*Device, error) { return nil, ErrUnsupported }

// Name returns "".
func (d *Device) Name() string { return "" }

// Index returns 0.
func (d *Device) Index() int { return 0 }

// Adopted returns false.
func (d *Device) Adopted() bool { return false }

// Offloads returns 0.
func (d *Device) Offloads() Offloads { return 0 }

// Close returns nil.
func (d *Device) Close() error { return nil }

// Stats returns zero counters.
func (d *Device) Stats() Stats { return Stats{} }

// Read returns ErrUnsupported.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) { return 0, ErrUnsupported }

// Write returns ErrUnsupported.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) { return 0, ErrUnsupported }

// WriteVirtio returns ErrUnsupported.
func (d *Device) WriteVirtio(bufs [][]byte, offset int) (int, error) { return 0, ErrUnsupported }

// WriteCoalesced returns ErrUnsupported.
func (d *Device) WriteCoalesced(bufs [][]byte, offset int) (int, error) { return 0, ErrUnsupported }
