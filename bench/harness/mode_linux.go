package harness

import (
	"context"
	"fmt"
)

// runMode sets a mode up, measures its steps and removes it.
func runMode(ctx context.Context, o *Options, m Mode, p *progress) (results []Result, err error) {
	steps := o.StepsFor(m)
	if len(steps) == 0 {
		return nil, nil // nothing of this mode is measured with these options
	}
	p.line("%s: building the testbed", m.label())
	e, err := setup(ctx, o, m)
	if err != nil {
		p.done += len(steps) * o.Reps
		return []Result{{Mode: m.Name, Step: steps[0], Error: err.Error()}}, err
	}
	// A Ctrl-C closes the namespaces at once; the defer does the rest.
	stopClose := context.AfterFunc(ctx, func() { e.topo.Close() })
	defer stopClose()
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("removing %s: %w", m.Name, cerr)
		}
	}()
	for _, s := range steps {
		res := Result{Mode: m.Name, Step: s}
		for rep := range o.Reps {
			if ctx.Err() != nil {
				break
			}
			p.line("%s: %s rep %d/%d", m.Name, s, rep+1, o.Reps)
			var sm Sample
			var serr error
			switch s.Kind {
			case KindTCP:
				sm, serr = e.tcp(ctx, s)
			case KindRR:
				sm, serr = e.rr(ctx, s)
			default:
				sm, serr = e.udp(ctx, s)
			}
			p.done++
			if serr != nil && ctx.Err() != nil {
				// Interrupted: the namespaces were closed under the
				// repetition, which is not a failure of the step.
				break
			}
			if serr != nil {
				res.Error = serr.Error()
				p.line("%s: %s: %v", m.Name, s, serr)
				p.done += o.Reps - rep - 1
				break
			}
			res.Samples = append(res.Samples, sm)
		}
		res.summarise()
		results = append(results, res)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	if e.d != nil {
		snap := e.d.Snapshot()
		if cerr := snap.Check(); cerr != nil {
			err = fmt.Errorf("mflow counters: %w", cerr)
		}
		// The XDP program's own count of what it handed to mflow must
		// equal what mflow received plus what its sockets dropped, and
		// nothing may have been passed to the kernel for lack of a socket.
		if c := e.mflowCounters(DirDecap); err == nil && (c.xdpNoSocket != 0 || c.xdpRedirected != c.decapReceived+c.xskDrops) {
			err = fmt.Errorf("mflow counters: XDP redirected %.0f frames, mflow received %.0f and its sockets dropped %.0f; %.0f passed for lack of a socket",
				c.xdpRedirected, c.decapReceived, c.xskDrops, c.xdpNoSocket)
		}
	}
	return results, err
}
