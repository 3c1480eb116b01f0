package sysfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed/testbedtest"
	"mflow/internal/sysfs"
)

// TestInNetns: the sysfs InNetns mounts lists the devices of the given
// namespace (a veth pair made there) and the host's /sys does not; the
// caller's thread keeps its namespace and mounts.
func TestInNetns(t *testing.T) {
	ns := testbedtest.NewNS(t, "sysfs")
	var fd int
	if err := ns.Do(func() (err error) {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sfs0"}, PeerName: "sfs1"}); err != nil {
			return err
		}
		fd, err = sysfs.OpenNetns()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	before, _ := os.Readlink("/proc/thread-self/ns/net")
	var seen bool
	var mnt string
	if err := sysfs.InNetns(fd, func(root string) error {
		mnt = root
		_, err := os.Stat(filepath.Join(root, "class/net/sfs0"))
		seen = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !seen {
		t.Errorf("the sysfs mounted for namespace %s does not list sfs0", ns.Name)
	}
	if _, err := os.Stat("/sys/class/net/sfs0"); err == nil {
		t.Errorf("the host's /sys lists sfs0 of namespace %s", ns.Name)
	}
	if _, err := os.Stat(filepath.Join(mnt, "class")); err == nil {
		t.Errorf("the private mount %s is visible outside its thread", mnt)
	}
	if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != before {
		t.Errorf("the caller's namespace changed: %s → %s", before, after)
	}
}
