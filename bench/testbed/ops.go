package testbed

// SetOffloads sets TSO, GSO, GRO and TX checksumming of link name as o says. It talks to the
// kernel through an ioctl on a socket opened inside the namespace.
func (ns *NS) SetOffloads(name string, o Offloads) error { return ns.setOffloads(name, o) }

// GetOffloads reports whether TSO, GSO, GRO and TX checksumming are on for link name.
func (ns *NS) GetOffloads(name string) (Offloads, error) { return ns.getOffloads(name) }

// SetRPS writes the hexadecimal CPU mask (e.g. "2" for CPU 1, "0" to turn
// RPS off) to queues/rx-<queue>/rps_cpus of link, through a private sysfs
// mount that shows the namespace's devices (see doSysfs).
func (ns *NS) SetRPS(link string, queue int, mask string) error { return ns.setRPS(link, queue, mask) }

// RPS reads the CPU mask of queues/rx-<queue>/rps_cpus of link.
func (ns *NS) RPS(link string, queue int) (string, error) { return ns.rps(link, queue) }

// ListNamed returns the names of the named namespaces in /run/netns that
// start with prefix (all of them for ""), e.g. to find what a killed run
// left behind.
func ListNamed(prefix string) ([]string, error) { return listNamed(prefix) }

// RemoveNamed deletes the named namespace name, like `ip netns delete`:
// for leftovers of a process that could not run its Close. Deleting a
// namespace another process still uses only removes its name.
func RemoveNamed(name string) error { return removeNamed(name) }
