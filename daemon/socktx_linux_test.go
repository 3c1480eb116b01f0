package daemon

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mflow/bench/testbed/testbedtest"
)

// TestSockPoolSend: a run of equal-sized datagrams and a shorter last one,
// sent in one sendmsg with UDP_SEGMENT, arrive as separate datagrams,
// intact and in order, from the pool's source port and with the TOS asked
// for; a lone datagram goes without segmentation; sending allocates
// nothing; the TTL is the pool's. Over loopback in a namespace of its own.
func TestSockPoolSend(t *testing.T) {
	ns := testbedtest.NewNS(t, "mfst")
	if err := ns.SetUp("lo"); err != nil {
		t.Fatal(err)
	}
	lo := [4]byte{127, 0, 0, 1}
	var p *sockPool
	rx := -1
	err := ns.Do(func() error {
		var err error
		if p, err = newSockPool(lo, 4789, 50000, 50015, 7, 1); err != nil {
			return err
		}
		if rx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(rx, unix.IPPROTO_IP, unix.IP_RECVTOS, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(rx, unix.IPPROTO_IP, unix.IP_RECVTTL, 1); err != nil {
			return err
		}
		unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		tv := unix.NsecToTimeval(int64(time.Second))
		unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(rx, &unix.SockaddrInet4{Addr: lo, Port: 4789})
	})
	if p != nil {
		defer p.close()
	}
	if rx >= 0 {
		defer unix.Close(rx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(p.fds) != sockPoolSize || p.ports[0] != 50000 || p.ports[len(p.ports)-1] > 50015 {
		t.Fatalf("pool of %d sockets on ports %v", len(p.fds), p.ports)
	}
	// The pool of a second network binds the same ports.
	if err := ns.Do(func() error {
		p2, err := newSockPool(lo, 4789, 50000, 50015, 0, 1)
		if err == nil {
			p2.close()
		}
		return err
	}); err != nil {
		t.Fatalf("a second pool on the same ports: %v", err)
	}
	dgrams := make([][]byte, 6)
	for i := range dgrams {
		n := 100
		if i == len(dgrams)-1 {
			n = 60
		}
		dgrams[i] = bytes.Repeat([]byte{byte(i + 1)}, n)
	}
	buf := make([]byte, 2048)
	oob := make([]byte, 64)
	recv := func(want []byte, tos byte) {
		t.Helper()
		n, oobn, _, from, err := unix.Recvmsg(rx, buf, oob, 0)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Errorf("datagram of %d bytes (first %d), want %d bytes of %d", n, buf[0], len(want), want[0])
		}
		if sa, ok := from.(*unix.SockaddrInet4); !ok || sa.Port < 50000 || sa.Port > 50015 {
			t.Errorf("from %v, want a port of the pool", from)
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		got, ttl := -1, -1
		for _, m := range msgs {
			if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
				got = int(m.Data[0])
			}
			if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL && len(m.Data) > 0 {
				ttl = int(m.Data[0])
			}
		}
		if got != int(tos) || ttl != 7 {
			t.Errorf("TOS %d, TTL %d; want %d, 7 (vtep.ttl)", got, ttl, tos)
		}
	}
	if err := p.send(3, lo, 0xb8, dgrams); err != nil {
		t.Fatalf("send: %v", err)
	}
	for _, d := range dgrams {
		recv(d, 0xb8)
	}
	if err := p.send(0, lo, 0x2a, dgrams[:1]); err != nil {
		t.Fatalf("send one: %v", err)
	}
	recv(dgrams[0], 0x2a)
	if a := testing.AllocsPerRun(50, func() {
		if err := p.send(1, lo, 0, dgrams); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("send allocates %v times", a)
	}
}
