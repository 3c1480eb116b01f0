//go:build unix

package config

import (
	"fmt"
	"os"
	"syscall"
)

// CheckAccess refuses a configuration file that someone other than root
// or the user mflow runs as could change: one writable by others, one
// writable by a group other than root's and the process's, or one owned by
// another user (an owner can always make it writable). Whoever can write
// the file chooses the peers mflow accepts and the devices it creates. It
// follows symbolic links. The error wraps ErrInvalid and says how to fix
// the file.
func CheckAccess(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode().Perm()
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	switch {
	case uint32(st.Uid) != 0 && uint32(st.Uid) != euid:
		return fmt.Errorf("%w: %s is owned by uid %d, neither root nor the user mflow runs as (uid %d), who could change the peers and devices it configures: chown root %s",
			ErrInvalid, path, st.Uid, euid, path)
	case mode&0o002 != 0:
		return fmt.Errorf("%w: %s is writable by every user (mode %04o), who could change the peers and devices it configures: chmod o-w %s",
			ErrInvalid, path, mode, path)
	case mode&0o020 != 0 && uint32(st.Gid) != 0 && uint32(st.Gid) != egid:
		return fmt.Errorf("%w: %s is writable by group %d (mode %04o), which is neither root's nor mflow's: chmod g-w %s",
			ErrInvalid, path, st.Gid, mode, path)
	}
	return nil
}
