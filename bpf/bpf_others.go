//go:build !linux

package bpf

// Program is the loaded XDP program; unavailable on this system.
type Program struct{}

// Attachment is an attached program; unavailable on this system.
type Attachment struct{}

// Load returns ErrUnsupported on this system.
func Load(Config) (*Program, error) { return nil, ErrUnsupported }

// Configure returns ErrUnsupported on this system.
func (p *Program) Configure(Config) error { return ErrUnsupported }

// Register returns ErrUnsupported on this system.
func (p *Program) Register(queue, fd int) error { return ErrUnsupported }

// Unregister returns ErrUnsupported on this system.
func (p *Program) Unregister(queue int) error { return ErrUnsupported }

// Counters returns ErrUnsupported on this system.
func (p *Program) Counters() (Counters, error) { return Counters{}, ErrUnsupported }

// Attach returns ErrUnsupported on this system.
func (p *Program) Attach(ifindex int, mode Mode) (*Attachment, error) { return nil, ErrUnsupported }

// Close does nothing on this system.
func (p *Program) Close() error { return nil }

// Mode returns ModeAuto on this system.
func (a *Attachment) Mode() Mode { return ModeAuto }

// Ifindex returns 0 on this system.
func (a *Attachment) Ifindex() int { return 0 }

// Close does nothing on this system.
func (a *Attachment) Close() error { return nil }
