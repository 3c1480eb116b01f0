package testbed

import (
	"crypto/rand"
	"errors"
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
