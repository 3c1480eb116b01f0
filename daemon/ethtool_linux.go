package daemon

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolSTXCSUM is ETHTOOL_STXCSUM from linux/ethtool.h: set TX
// checksum offload (the legacy one-value command; the kernel maps it onto
// the feature bits).
const ethtoolSTXCSUM = 0x17

// txChecksumOff turns TX checksum offload off on link name, in the calling
// thread's network namespace. A veth peer of mflow's veth needs it: a frame
// the containers send with a checksum left to "hardware"
// (CHECKSUM_PARTIAL) would reach mflow's XDP program with the checksum
// unfinished, and the remote VTEP would drop it; without the offload the
// kernel completes the checksum before the frame crosses the veth.
func txChecksumOff(name string) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("turn off tx checksumming on %s: name too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("turn off tx checksumming on %s: %w", name, err)
	}
	defer unix.Close(fd)
	val := struct{ cmd, data uint32 }{cmd: ethtoolSTXCSUM, data: 0}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&val)
	if errno != 0 {
		return fmt.Errorf("turn off tx checksumming on %s: %w", name, errno)
	}
	return nil
}
