package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl writes value to the network sysctl key (a path below /proc/sys,
// "net/ipv4/ip_forward" or "net.ipv4.ip_forward") of the namespace.
// /proc/sys/net shows the namespace of the thread that opens the file, so
// the write happens inside Do.
func (ns *NS) Sysctl(key, value string) error {
	path := sysctlPath(key)
	err := ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("setting sysctl %s in %s: %w", key, ns.Name, err)
	}
	return nil
}

// GetSysctl reads the network sysctl key of the namespace.
func (ns *NS) GetSysctl(key string) (string, error) {
	path := sysctlPath(key)
	var v string
	err := ns.Do(func() error {
		b, err := os.ReadFile(path)
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s in %s: %w", key, ns.Name, err)
	}
	return v, nil
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// DisableIPv6 turns IPv6 off for existing and future links of the
// namespace, so that no router solicitations, MLD reports or duplicate
// address probes appear in packet counts.
func (ns *NS) DisableIPv6() error {
	for _, k := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := ns.Sysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}
