//go:build !linux

package traffic

import (
	"context"
	"net/netip"

	"mflow/bench/testbed"
)

// bulk is unsupported outside Linux.
func bulk(ctx context.Context, from, to *testbed.NS, addr netip.AddrPort, o BulkOptions) ([]streamEnd, []int64, error) {
	return nil, nil, testbed.ErrUnsupported
}
