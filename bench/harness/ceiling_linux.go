package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"mflow/bench/gen"
	"mflow/bench/testbed"
	"mflow/bpf"
	"mflow/xsk"
)

// ceiling is an AF_XDP socket on the host's uplink with mflow's XDP
// program, whose frames a loop receives, checks and releases.
type ceiling struct {
	prog *bpf.Program
	att  *bpf.Attachment
	sock *xsk.Socket
	cpu  int
	quit chan struct{}
	done chan *flowCheck
}

func openCeiling(host *testbed.NS, o *Options) (*ceiling, error) {
	c := &ceiling{cpu: -1}
	if others := otherCPUs(o.GenCPUs); o.Pin && len(others) > 0 {
		c.cpu = others[0]
	}
	err := host.Do(func() error {
		ifi, err := net.InterfaceByName(testbed.HostUplink)
		if err != nil {
			return err
		}
		if c.prog, err = bpf.Load(bpf.Config{VTEPs: []netip.Addr{hostUnIP}, Port: testbed.VxLANPort, Queues: 1}); err != nil {
			return fmt.Errorf("loading XDP program: %w", err)
		}
		if c.sock, err = xsk.Open(ifi.Index, 0, xsk.Options{NumFrames: 8192, FillSize: 4096, RxSize: 4096}); err != nil {
			return fmt.Errorf("opening AF_XDP socket: %w", err)
		}
		if err := c.prog.Register(0, c.sock.FD()); err != nil {
			return fmt.Errorf("registering socket: %w", err)
		}
		if c.att, err = c.prog.Attach(ifi.Index, bpf.ModeAuto); err != nil {
			return fmt.Errorf("attaching XDP program: %w", err)
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("setting up the ceiling: %w", err)
	}
	return c, nil
}

// start begins a receive loop that checks flows' sequence numbers at off.
func (c *ceiling) start(flows, off int) {
	c.quit = make(chan struct{})
	c.done = make(chan *flowCheck, 1)
	chk := newFlowCheck(flows)
	go func() {
		if c.cpu >= 0 {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer pinThread(c.cpu)() // restored before the unlock
		}
		descs := make([]xsk.Desc, 256)
		var idleSince time.Time
		quitting := false
		for {
			k := c.sock.Receive(descs)
			if k == 0 {
				if !quitting {
					select {
					case <-c.quit:
						quitting, idleSince = true, time.Now()
					default:
					}
				}
				if quitting && time.Since(idleSince) > 100*time.Millisecond {
					c.done <- chk
					return
				}
				c.sock.Poll(time.Millisecond)
				continue
			}
			now := monoNow()
			for _, d := range descs[:k] {
				if fr := c.sock.Frame(d); len(fr) > off {
					chk.add(fr[off:], now)
				}
			}
			c.sock.Release(descs[:k])
			if quitting {
				idleSince = time.Now()
			}
		}
	}()
}

// stop ends the loop once the socket has been idle and returns its check.
func (c *ceiling) stop() *flowCheck {
	close(c.quit)
	return <-c.done
}

func (c *ceiling) close() {
	if c.att != nil {
		c.att.Close()
	}
	if c.sock != nil {
		c.sock.Close()
	}
	if c.prog != nil {
		c.prog.Close()
	}
}

// transmit is the encap ceiling: it sends copies of frame (a whole VxLAN
// frame for the peer) from the uplink's AF_XDP socket in one goroutine,
// pinned like the receive loop, for d or until ctx ends. No
// encapsulation happens per packet: every UMEM frame the loop uses is
// initialised from the frame once, and per packet the loop writes only
// the sequence number, the send time and the flow's source ports (at the
// offsets of o, as the generator's XDP program does), then hands batches
// to the tx ring, reaping completions, with one wakeup per batch. It
// returns the packets the tx ring took and the time it ran.
func (c *ceiling) transmit(ctx context.Context, frame gen.Frame, o gen.Options, d time.Duration) (gen.Stats, error) {
	if c.cpu >= 0 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pinThread(c.cpu)() // restored before the unlock
	}
	const batch = 64
	fs := c.sock.Options().FrameSize
	ready := make([]bool, c.sock.Options().NumFrames)
	var pending []xsk.Desc // stamped, not yet on the ring: sent first, in order
	descs := make([]xsk.Desc, batch)
	var seq uint64
	nflows := uint64(len(o.Flows))
	start := time.Now()
	end := start.Add(d)
	var st gen.Stats
	for i := 0; ; i++ {
		if i%16 == 0 && (ctx.Err() != nil || !time.Now().Before(end)) {
			break
		}
		c.sock.Complete()
		if len(pending) == 0 {
			n := c.sock.Alloc(descs)
			if n == 0 {
				c.sock.Poll(time.Millisecond)
				continue
			}
			now := uint64(monoNow())
			for j := range descs[:n] {
				dsc := &descs[j]
				b := c.sock.Frame(xsk.Desc{Addr: dsc.Addr, Len: uint32(fs)})
				if idx := dsc.Addr / uint64(fs); !ready[idx] {
					copy(b, frame.Data)
					ready[idx] = true
				}
				dsc.Len = uint32(len(frame.Data))
				binary.BigEndian.PutUint64(b[frame.SeqOffset:], seq)
				binary.BigEndian.PutUint64(b[frame.TimeOffset:], now)
				if nflows > 1 {
					fl := o.Flows[seq%nflows]
					for k, off := range o.FlowOffsets {
						binary.BigEndian.PutUint16(b[off:], fl[k])
					}
				}
				seq++
			}
			pending = descs[:n]
		}
		k, err := c.sock.Transmit(pending)
		st.Sent += uint64(k)
		pending = pending[k:]
		if err != nil {
			c.sock.Free(pending)
			return st, fmt.Errorf("transmitting: %w", err)
		}
		if len(pending) > 0 {
			c.sock.Poll(time.Millisecond) // ring full: wait for completions
		}
	}
	st.Duration = time.Since(start)
	c.sock.Free(pending)
	// Let the kernel finish what is on the ring before the next step.
	for deadline := time.Now().Add(100 * time.Millisecond); c.sock.Accounting().Tx > 0 && time.Now().Before(deadline); {
		c.sock.Complete()
		c.sock.Poll(time.Millisecond)
	}
	return st, nil
}
