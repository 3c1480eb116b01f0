//go:build !linux

package dataplane

import "errors"

// errNoPinning is returned where CPU pinning is not implemented.
var errNoPinning = errors.New("CPU pinning is only supported on Linux")

func pinThread(int) (func(), error) { return nil, errNoPinning }

func checkAffinity(a *Affinity) error {
	if a.Dispatcher == nil && a.Output == nil {
		for _, c := range a.Workers {
			if c != NoCPU {
				return errNoPinning
			}
		}
		return nil
	}
	return errNoPinning
}
