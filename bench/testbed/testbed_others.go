//go:build !linux

package testbed

func newNS(string) (*NS, error) { return nil, ErrUnsupported }

func (ns *NS) do(func() error) error { return ErrUnsupported }

func (ns *NS) close() error { return nil }

func (ns *NS) setOffloads(string, Offloads) error { return ErrUnsupported }

func (ns *NS) getOffloads(string) (Offloads, error) { return Offloads{}, ErrUnsupported }

func (ns *NS) setRPS(string, int, string) error { return ErrUnsupported }

func (ns *NS) rps(string, int) (string, error) { return "", ErrUnsupported }

func listNamed(string) ([]string, error) { return nil, ErrUnsupported }

func removeNamed(string) error { return ErrUnsupported }

// Placeholders for Linux's netlink constants: nothing reaches the kernel
// on this system (newNS fails first).
const (
	afInet, afInet6, afBridge, nudPermanent, nudPermanentNoARP, ntfSelf = 0, 0, 0, 0, 0, 0
)

func dupFD(int) (int, error) { return -1, ErrUnsupported }

func closeFD(int) error { return nil }
