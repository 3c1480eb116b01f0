package xsk

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"mflow/bench/testbed"
	"mflow/bpf"
)

// sendAndCheck sends n VxLAN frames from the peer (AF_PACKET) and checks
// that s receives every one exactly once, bytes intact.
func sendAndCheck(t *testing.T, b *bed, s *Socket, n, size int) {
	t.Helper()
	raw := newRawSocket(t, b.peer, peerLink, 0)
	sent := make([][]byte, n)
	for i := range sent {
		sent[i] = b.vxFrame(t, uint64(i), uint16(40000+i%1000), size)
		raw.send(t, sent[i])
	}
	got := collect(t, s, n, 5*time.Second)
	checkFrames(t, sent, got)
}

func checkFrames(t *testing.T, sent, got [][]byte) {
	t.Helper()
	seen := make([]bool, len(sent))
	for _, f := range got {
		seq := seqOf(f)
		if seq >= uint64(len(sent)) {
			t.Errorf("received a frame with bad sequence number %d (len %d)", seq, len(f))
			continue
		}
		if seen[seq] {
			t.Errorf("frame %d received twice", seq)
		}
		seen[seq] = true
		if !bytes.Equal(f, sent[seq]) {
			t.Errorf("frame %d differs:\n got %x\nwant %x", seq, f, sent[seq])
		}
	}
	missing := 0
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("received %d of %d frames, %d missing", len(got), len(sent), missing)
	}
}

func TestReceiveVxLAN(t *testing.T) {
	b := newBed(t, bedOpts{})
	s := b.open(t, 0, Options{})
	if s.ZeroCopy() {
		t.Errorf("zero-copy on veth: want copy mode")
	}
	t.Logf("bound: zero-copy %v, need_wakeup %v", s.ZeroCopy(), s.NeedWakeup())
	before, err := b.prog.Counters()
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	sendAndCheck(t, b, s, n, 128)
	after, err := b.prog.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Packets[bpf.VerdictRedirect] - before.Packets[bpf.VerdictRedirect]; got != n {
		t.Errorf("program redirected %d frames, want %d", got, n)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != n || st.Kernel.RxDropped != 0 {
		t.Errorf("stats %+v, want %d received and no drops", st, n)
	}
	// Every frame is back: n received and released, the fill ring full again.
	if a := s.Accounting(); a.InFlight != 0 || a.Rx != s.Options().InitialFill {
		t.Errorf("accounting %+v: want nothing in flight and %d in rx", a, s.Options().InitialFill)
	}
}

func TestSizes(t *testing.T) {
	b := newBed(t, bedOpts{})
	s := b.open(t, 0, Options{NumFrames: 256, FrameSize: 4096, FillSize: 64, RxSize: 64, TxSize: 64, CompletionSize: 64})
	raw := newRawSocket(t, b.peer, peerLink, 0)
	var sent [][]byte
	for i, size := range []int{104, 128, 1500, 1514, 1000, 200} {
		f := b.vxFrame(t, uint64(i), 40000, size)
		sent = append(sent, f)
		raw.send(t, f)
	}
	checkFrames(t, sent, collect(t, s, len(sent), 3*time.Second))
}

func TestNonVxLANReachesKernel(t *testing.T) {
	b := newBed(t, bedOpts{noNeigh: true}) // ARP must work
	s := b.open(t, 0, Options{})
	before, _ := b.prog.Counters()

	// UDP on another port, host as server.
	var srv *net.UDPConn
	if err := b.host.Do(func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: hostIP.AsSlice(), Port: 5555})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cli *net.UDPConn
	if err := b.peer.Do(func() error {
		var err error
		cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: hostIP.AsSlice(), Port: 5555})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	m, from, err := srv.ReadFromUDP(buf)
	if err != nil || string(buf[:m]) != "hello" {
		t.Fatalf("udp to port 5555: got %q, %v", buf[:m], err)
	}
	// Reply: the peer resolves the host by ARP too.
	if _, err := srv.WriteToUDP([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(3 * time.Second))
	if m, err := cli.Read(buf); err != nil || string(buf[:m]) != "back" {
		t.Fatalf("udp reply: got %q, %v", buf[:m], err)
	}

	// ICMP echo from the peer.
	var pc net.PacketConn
	if err := b.peer.Do(func() error {
		var err error
		pc, err = net.ListenPacket("ip4:icmp", peerIP.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	echo := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(echo, gopacket.SerializeOptions{ComputeChecksums: true},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 77, Seq: 1},
		gopacket.Payload("ping"))
	if _, err := pc.WriteTo(echo.Bytes(), &net.IPAddr{IP: hostIP.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		m, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("icmp echo reply: %v", err)
		}
		p := gopacket.NewPacket(buf[:m], layers.LayerTypeICMPv4, gopacket.Default)
		if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply && ic.Id == 77 {
			break
		}
	}
	after, _ := b.prog.Counters()
	if d := after.Packets[bpf.VerdictPass] - before.Packets[bpf.VerdictPass]; d < 3 {
		t.Errorf("program passed %d frames, want at least 3 (arp, udp, icmp)", d)
	}
	if d := after.Packets[bpf.VerdictRedirect] - before.Packets[bpf.VerdictRedirect]; d != 0 {
		t.Errorf("program redirected %d non-VxLAN frames", d)
	}
	if n := s.Receive(make([]Desc, 16)); n != 0 {
		t.Errorf("socket received %d non-VxLAN frames", n)
	}
}

func TestMultiQueue(t *testing.T) {
	const queues = 2
	b := newBed(t, bedOpts{queues: queues})
	socks := make([]*Socket, queues)
	for q := range socks {
		socks[q] = b.open(t, q, Options{})
	}
	before, _ := b.prog.Counters()
	raw := newRawSocket(t, b.peer, peerLink, 0)
	const n = 1000
	sent := make([][]byte, n)
	for i := range sent {
		sent[i] = b.vxFrame(t, uint64(i), uint16(30000+i), 128) // one flow per frame: hashed over the tx queues
		raw.send(t, sent[i])
	}
	var all [][]byte
	for q, s := range socks {
		got := collect(t, s, n, 500*time.Millisecond)
		t.Logf("queue %d received %d frames", q, len(got))
		if len(got) == 0 {
			t.Errorf("queue %d received nothing: traffic not spread", q)
		}
		all = append(all, got...)
	}
	checkFrames(t, sent, all)
	after, _ := b.prog.Counters()
	if d := after.Packets[bpf.VerdictNoSocket] - before.Packets[bpf.VerdictNoSocket]; d != 0 {
		t.Errorf("%d frames arrived on a queue without socket", d)
	}
	// Without the socket of queue 1 its frames go to the kernel, and queue
	// 0's socket never sees them.
	if err := b.prog.Unregister(1); err != nil {
		t.Fatal(err)
	}
	before = after
	for i := range sent {
		raw.send(t, sent[i])
	}
	got0 := collect(t, socks[0], n, time.Second)
	after, _ = b.prog.Counters()
	if d := after.Packets[bpf.VerdictNoSocket] - before.Packets[bpf.VerdictNoSocket]; d == 0 || int(d)+len(got0) != n {
		t.Errorf("queue 0 got %d, %d passed for lack of a socket; want a total of %d with both non-zero", len(got0), d, n)
	}
}

func TestTransmit(t *testing.T) {
	b := newBed(t, bedOpts{})
	s := b.open(t, 0, Options{})
	sink := newRawSocket(t, b.peer, peerLink, unix.ETH_P_ALL)
	const n = 500
	sent := make([][]byte, n)
	descs := make([]Desc, 64)
	for i := 0; i < n; {
		k := s.Alloc(descs[:min(len(descs), n-i)])
		if k == 0 {
			t.Fatal("no free frames")
		}
		for j := range descs[:k] {
			f := b.vxFrame(t, uint64(i+j), 4000, 128+(i+j)%200)
			// reverse direction: from host to peer
			copy(f[0:6], b.peerMAC)
			copy(f[6:12], b.hostMAC)
			sent[i+j] = f
			descs[j].Len = uint32(copy(s.Frame(descs[j]), f))
		}
		for off := 0; off < k; {
			m, err := s.Transmit(descs[off:k])
			if err != nil {
				t.Fatal(err)
			}
			off += m
			s.Complete()
		}
		i += k
	}
	got := sink.recvUntil(t, n, 5*time.Second, func(f []byte) bool {
		return len(f) > 12 && bytes.Equal(f[6:12], b.hostMAC) && seqOf(f) < n
	})
	checkFrames(t, sent, got)
	deadline := time.Now().Add(2 * time.Second)
	for s.Accounting().Tx > 0 && time.Now().Before(deadline) {
		s.Poll(10 * time.Millisecond)
		s.Complete()
	}
	if a := s.Accounting(); a.Tx != 0 || a.InFlight != 0 {
		t.Errorf("after completion: %+v, want nothing in tx or in flight", a)
	}
	st, _ := s.Stats()
	if st.Transmitted != n || st.Completed != n {
		t.Errorf("stats transmitted %d completed %d, want %d", st.Transmitted, st.Completed, n)
	}
}

func TestReopenSameQueue(t *testing.T) {
	b := newBed(t, bedOpts{})
	for round := 0; round < 3; round++ {
		var s *Socket
		if err := b.host.Do(func() error {
			var err error
			s, err = Open(b.hostIdx, 0, Options{NumFrames: 1024, FillSize: 512, RxSize: 512, TxSize: 512, CompletionSize: 512})
			return err
		}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := b.prog.Register(0, s.FD()); err != nil {
			t.Fatal(err)
		}
		sendAndCheck(t, b, s, 50, 128)
		checkAccounting(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		d := make([]Desc, 4)
		if n := s.Receive(d); n != 0 {
			t.Errorf("Receive after Close = %d", n)
		}
		if n := s.Alloc(d); n != 0 {
			t.Errorf("Alloc after Close = %d", n)
		}
		if _, err := s.Transmit(d); !errors.Is(err, ErrClosed) {
			t.Errorf("Transmit after Close: %v, want ErrClosed", err)
		}
		if _, err := s.Poll(0); !errors.Is(err, ErrClosed) {
			t.Errorf("Poll after Close: %v, want ErrClosed", err)
		}
	}
}

func TestZeroCopyRequiredFails(t *testing.T) {
	b := newBed(t, bedOpts{})
	err := b.host.Do(func() error {
		s, err := Open(b.hostIdx, 0, Options{Bind: BindZeroCopy})
		if err == nil {
			s.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("zero-copy bind on veth succeeded, want an error")
	}
	t.Logf("zero-copy on veth: %v", err)
	// A failed attempt leaks nothing: the queue binds in copy mode now.
	s := b.open(t, 0, Options{Bind: BindCopy})
	if s.ZeroCopy() {
		t.Error("copy mode reported as zero-copy")
	}
}

func TestOwnershipViolationsIgnored(t *testing.T) {
	b := newBed(t, bedOpts{noXDP: true})
	s := b.open(t, 0, Options{NumFrames: 64, FillSize: 32, RxSize: 32, TxSize: 32, CompletionSize: 32})
	d := make([]Desc, 4)
	if n := s.Alloc(d); n != 4 {
		t.Fatalf("Alloc = %d", n)
	}
	s.Free(d[:2])
	s.Free(d[:2])                                                       // double free
	s.Release([]Desc{{Addr: 1 << 40}})                                  // out of range
	if n, _ := s.Transmit([]Desc{{Addr: d[0].Addr, Len: 60}}); n != 1 { // not owned any more
		t.Errorf("Transmit consumed %d, want 1", n)
	}
	d[2].Len = 5000 // longer than a frame
	s.Transmit(d[2:3])
	a := s.Accounting()
	if a.Invalid != 5 {
		t.Errorf("invalid = %d, want 5", a.Invalid)
	}
	if err := a.Check(); err != nil {
		t.Error(err)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	s.Free(d[3:4])
	if a := s.Accounting(); a.InFlight != 0 {
		t.Errorf("in flight %d, want 0", a.InFlight)
	}
	// Expected invalids were checked; reset for the cleanup check.
	s.mu.Lock()
	s.invalid = 0
	s.mu.Unlock()
}

func TestNoAllocs(t *testing.T) {
	b := newBed(t, bedOpts{})
	s := b.open(t, 0, Options{})
	raw := newRawSocket(t, b.peer, peerLink, 0)
	const n = 1024
	for i := 0; i < n; i++ {
		raw.send(t, b.vxFrame(t, uint64(i), 40000, 128))
	}
	descs := make([]Desc, 64)
	// The frames wait in the rx ring: each run takes 64 and gives them back.
	for i := 0; i < 50 && s.Accounting().RxRing < n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	got := 0
	allocs := testing.AllocsPerRun(10, func() {
		k := s.Receive(descs)
		got += k
		s.Release(descs[:k])
	})
	if allocs != 0 || got == 0 {
		t.Errorf("receive/release: %v allocs per batch, %d frames", allocs, got)
	}
	collect(t, s, n-got, 2*time.Second)
	allocs = testing.AllocsPerRun(50, func() {
		k := s.Alloc(descs)
		for j := range descs[:k] {
			descs[j].Len = 64
		}
		m, _ := s.Transmit(descs[:k])
		s.Free(descs[m:k])
		s.Poll(time.Millisecond)
		s.Complete()
		s.Stats()
		s.Accounting()
	})
	if allocs != 0 {
		t.Errorf("alloc/transmit/complete: %v allocs per batch", allocs)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Accounting().Tx > 0 && time.Now().Before(deadline) {
		s.Poll(10 * time.Millisecond)
		s.Complete()
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{FrameSize: 1024},
		{FrameSize: 3000},
		{NumFrames: 1000},
		{NumFrames: -4},
		{FillSize: 100},
		{RxSize: 3},
		{TxSize: 1000},
		{CompletionSize: -1},
		{RxSize: -1, TxSize: -1},
		{Bind: 9},
		{NumFrames: 64, FillSize: 128, InitialFill: 128},
	}
	for _, o := range bad {
		if _, err := o.WithDefaults(); err == nil {
			t.Errorf("WithDefaults(%+v) = nil error", o)
		} else if !strings.HasPrefix(err.Error(), "validate options: ") {
			t.Errorf("error %q does not name its operation", err)
		}
		if _, err := Open(1, 0, o); err == nil {
			t.Errorf("Open(%+v) = nil error", o)
		}
	}
	o, err := Options{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{NumFrames: 4096, FrameSize: 2048, FillSize: 2048, CompletionSize: 2048, RxSize: 2048, TxSize: 2048, InitialFill: 2048}
	if o != want {
		t.Errorf("defaults %+v, want %+v", o, want)
	}
	if o, _ := (Options{TxSize: -1, NumFrames: 1024}).WithDefaults(); o.InitialFill != 1024 {
		t.Errorf("rx-only initial fill %d, want 1024", o.InitialFill)
	}
}

// TestKilledProcessLeavesNothing runs a child that attaches the program and
// binds a socket inside the host namespace, kills it with SIGKILL, and
// checks that the program is gone and that a new process binds the queue
// and attaches natively again.
func TestKilledProcessLeavesNothing(t *testing.T) {
	b := newBed(t, bedOpts{noXDP: true})
	child := startChild(t, b, "hold")
	if err := waitReady(child); err != nil {
		t.Fatal(err)
	}
	if !xdpAttached(t, b.host) {
		t.Fatal("child reported ready but no XDP program is attached")
	}
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for xdpAttached(t, b.host) {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still attached 5s after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := startChild(t, b, "bind")
	if err := waitReady(second); err != nil {
		t.Fatalf("new process after SIGKILL: %v", err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("new process after SIGKILL: %v", err)
	}
}

type child struct {
	cmd   *exec.Cmd
	ready chan error
}

// startChild re-executes the test binary as TestChildHoldsSocket in mode
// "hold" (attach, bind, register, wait to be killed) or "bind" (attach,
// bind, register, exit).
func startChild(t *testing.T, b *bed, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildHoldsSocket$", "-test.v")
	cmd.Env = append(os.Environ(), "XSK_CHILD_NETNS="+b.host.Path(), "XSK_CHILD_IFINDEX="+strconv.Itoa(b.hostIdx), "XSK_CHILD_MODE="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &child{cmd: cmd, ready: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "XSK-CHILD-READY" {
				c.ready <- nil
				io.Copy(io.Discard, out)
				return
			}
			if strings.HasPrefix(line, "XSK-CHILD-ERROR") {
				c.ready <- fmt.Errorf("child: %s", line)
				return
			}
		}
		c.ready <- fmt.Errorf("child exited before ready: %v", sc.Err())
	}()
	return c
}

func waitReady(c *child) error {
	select {
	case err := <-c.ready:
		return err
	case <-time.After(20 * time.Second):
		return fmt.Errorf("child not ready after 20s")
	}
}

func xdpAttached(t *testing.T, ns *testbed.NS) bool {
	t.Helper()
	l, err := ns.Link(hostLink)
	if err != nil {
		t.Fatal(err)
	}
	x := l.Attrs().Xdp
	return x != nil && x.Attached
}

// TestChildHoldsSocket is the child of TestKilledProcessLeavesNothing; it
// does nothing unless XSK_CHILD_NETNS is set.
func TestChildHoldsSocket(t *testing.T) {
	nsPath := os.Getenv("XSK_CHILD_NETNS")
	if nsPath == "" {
		t.Skip("helper process for TestKilledProcessLeavesNothing")
	}
	fail := func(err error) {
		fmt.Printf("XSK-CHILD-ERROR %v\n", err)
		os.Exit(1)
	}
	runtime.LockOSThread() // stay on the thread that enters the namespace
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		fail(err)
	}
	idx, _ := strconv.Atoi(os.Getenv("XSK_CHILD_IFINDEX"))
	p, err := bpf.Load(bpf.Config{VTEPs: []netip.Addr{hostIP}})
	if err != nil {
		fail(err)
	}
	at, err := p.Attach(idx, bpf.ModeNative)
	if err != nil {
		fail(err)
	}
	if at.Mode() != bpf.ModeNative {
		fail(fmt.Errorf("attached in %v mode", at.Mode()))
	}
	s, err := Open(idx, 0, Options{})
	if err != nil {
		fail(err)
	}
	if err := p.Register(0, s.FD()); err != nil {
		fail(err)
	}
	fmt.Println("XSK-CHILD-READY")
	if os.Getenv("XSK_CHILD_MODE") == "bind" {
		s.Close()
		os.Exit(0)
	}
	time.Sleep(time.Minute)
	fail(fmt.Errorf("not killed"))
}

// TestReleaseFromAnotherGoroutine mirrors the dataplane: one goroutine
// receives and hands batches over a channel to another that releases
// them (run with -race).
func TestReleaseFromAnotherGoroutine(t *testing.T) {
	b := newBed(t, bedOpts{})
	s := b.open(t, 0, Options{NumFrames: 1024, FillSize: 256, RxSize: 256, TxSize: 64, CompletionSize: 64})
	const n = 3000
	batches := make(chan []Desc, 8)
	pool := make(chan []Desc, 16)
	for i := 0; i < cap(pool); i++ {
		pool <- make([]Desc, 32)
	}
	var released atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for batch := range batches {
			s.Release(batch)
			released.Add(int64(len(batch)))
			pool <- batch[:cap(batch)]
		}
	}()
	raw := newRawSocket(t, b.peer, peerLink, 0)
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = b.vxFrame(t, uint64(i), 40000, 128)
	}
	go func() {
		for i, f := range frames {
			// Window: frames sent but not yet released never exceed the
			// fill ring (256), so a slow (race-instrumented) receiver
			// loses nothing.
			for int64(i)-released.Load() >= 200 {
				time.Sleep(50 * time.Microsecond)
			}
			if err := raw.trySend(f); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := make([]bool, n)
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for got < n && time.Now().Before(deadline) {
		s.Poll(10 * time.Millisecond)
		batch := <-pool
		k := s.Receive(batch)
		for _, d := range batch[:k] {
			if seq := seqOf(s.Frame(d)); seq < n && !seen[seq] {
				seen[seq] = true
				got++
			}
		}
		batches <- batch[:k]
	}
	close(batches)
	<-done
	if got != n || released.Load() != n {
		st, _ := s.Stats()
		t.Errorf("received %d distinct, released %d; want %d (stats %+v)", got, released.Load(), n, st)
	}
}

// TestLinkDeleted: when the interface disappears under an open socket,
// calls fail cleanly (no panic, no hang) and Close still works.
func TestLinkDeleted(t *testing.T) {
	b := newBed(t, bedOpts{noXDP: true})
	s := b.open(t, 0, Options{NumFrames: 64, FillSize: 32, RxSize: 32, TxSize: 32, CompletionSize: 32})
	if err := b.host.DeleteLink(hostLink); err != nil {
		t.Fatal(err)
	}
	d := make([]Desc, 4)
	n := s.Alloc(d)
	for i := range d[:n] {
		d[i].Len = 60
	}
	m, err := s.Transmit(d[:n])
	t.Logf("Transmit after link deletion: %d, %v", m, err)
	if err == nil {
		t.Errorf("Transmit after link deletion: no error")
	}
	s.Free(d[m:n])
	start := time.Now()
	ok, err := s.Poll(100 * time.Millisecond)
	t.Logf("Poll after link deletion: %v, %v after %v", ok, err, time.Since(start))
	if k := s.Receive(d); k != 0 {
		t.Errorf("Receive after link deletion = %d", k)
	}
	if _, err := s.Stats(); err != nil {
		t.Logf("Stats after link deletion: %v", err)
	}
	// Frames handed to the kernel for tx never complete now; the
	// accounting still adds up.
	if err := s.Accounting().Check(); err != nil {
		t.Error(err)
	}
}
