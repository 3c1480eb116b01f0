//go:build !linux

package tap

// open returns ErrUnsupported: TAP devices are Linux's here.
func open(Options) (*Device, error) { return nil, ErrUnsupported }

// Tx is a transmit-only TAP (Linux only).
type Tx struct{}

// OpenTx returns ErrUnsupported.
func OpenTx(string, int) (*Tx, error) { return nil, ErrUnsupported }

func (*Tx) Name() string                        { return "" }
func (*Tx) Index() int                          { return 0 }
func (*Tx) Queues() int                         { return 0 }
func (*Tx) Write(int, []byte) error             { return ErrUnsupported }
func (*Tx) Close() error                        { return nil }
func (*Tx) SetRPS(string, func(int) bool) error { return ErrUnsupported }
func (*Tx) KernelDrops() uint64                 { return 0 }

// SetSteering returns ErrUnsupported.
func (d *Device) SetSteering(int) error { return ErrUnsupported }

// Up returns ErrUnsupported.
func (d *Device) Up(string) error { return ErrUnsupported }

// SetRPS returns ErrUnsupported.
func (d *Device) SetRPS(string) error { return ErrUnsupported }

// RPS returns ErrUnsupported.
func (d *Device) RPS() ([]string, error) { return nil, ErrUnsupported }

func (d *Device) closeRPS() error { return nil }

// rpsCtl is RPS control (Linux only).
type rpsCtl struct{}
