package testbed

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ErrUnsupported is returned on platforms other than Linux.
var ErrUnsupported = errors.New("testbed: unsupported platform (needs Linux)")

// ErrClosed is returned by methods of a namespace that has been closed.
var ErrClosed = errors.New("testbed: namespace closed")

// NetnsDir is where named network namespaces are bind-mounted, as iproute2
// does.
const NetnsDir = "/run/netns"

// NS is a named network namespace created by [NewNS]. The zero value is not
// usable. All methods are safe for concurrent use; Close may be called from
// another goroutine (a signal handler, say) while others are in use, after
// which they fail with [ErrClosed].
type NS struct {
	// Name is the namespace's name, "<prefix>-<random6>"; it appears as
	// /run/netns/<Name>.
	Name string

	mu     sync.Mutex
	fd     netns.NsHandle  // open handle to the namespace; -1 once closed
	nl     *netlink.Handle // netlink handle whose sockets live in the namespace
	closed bool
}

// randomSuffix returns n characters from [a-z0-9].
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("testbed: reading random bytes: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// NewNS creates the named network namespace "<prefix>-<random6>" the way
// iproute2 does (a bind mount of the namespace on /run/netns/<name>, with
// /run/netns a shared mount so that other mount namespaces see it), brings
// its loopback up and returns it. The caller's thread does not change
// namespace.
func NewNS(prefix string) (*NS, error) { return newNS(prefix) }

// Do runs fn on an OS thread switched into the namespace and waits for it.
// The caller's goroutine and thread keep their namespace. Sockets and BPF
// test runs started by fn belong to the namespace (a socket keeps its
// namespace after Do returns); goroutines started by fn do not inherit it.
// A panic in fn is re-raised in the caller's goroutine.
func (ns *NS) Do(fn func() error) error { return ns.do(fn) }

// Close deletes the namespace: it unmounts and removes /run/netns/<Name> and
// closes its handles, after which the kernel destroys the namespace and its
// links as soon as nothing else (a process, an open socket) holds it.
// Close is idempotent and safe to call concurrently.
func (ns *NS) Close() error { return ns.close() }

// Handle returns the namespace's open handle, for netlink.NewHandleAt and
// the like; it stays owned by ns (do not close it) and is invalid after
// Close (netns.None()).
func (ns *NS) Handle() netns.NsHandle {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return netns.None()
	}
	return ns.fd
}

// Path returns the namespace's bind-mount path, /run/netns/<Name>.
func (ns *NS) Path() string { return filepath.Join(NetnsDir, ns.Name) }

// netlink returns the namespace's netlink handle with ns.mu held; the
// caller must call the returned unlock function.
func (ns *NS) netlink() (*netlink.Handle, func(), error) {
	ns.mu.Lock()
	if ns.closed {
		ns.mu.Unlock()
		return nil, nil, fmt.Errorf("namespace %s: %w", ns.Name, ErrClosed)
	}
	return ns.nl, ns.mu.Unlock, nil
}
