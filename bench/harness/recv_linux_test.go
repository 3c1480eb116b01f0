package harness

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"mflow/bench/testbed/testbedtest"
)

// TestFlowCheck: the receivers' sequence accounting, as the generators
// number packets (packet s belongs to flow s % flows and is its packet
// s / flows): every packet counted once, late and repeated ones found per
// flow, and one-way delays taken from the stamped send time.
func TestFlowCheck(t *testing.T) {
	const flows = 3
	c := newFlowCheck(flows)
	pkt := func(seq uint64, sent int64) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, seq)
		binary.BigEndian.PutUint64(b[8:], uint64(sent))
		return b
	}
	// 0..29 in order except: 7 arrives after 10 (flow 1: 1,4,10,7 → 7
	// late), and 12 twice.
	order := []uint64{0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 7, 11, 12, 12}
	for s := uint64(13); s < 30; s++ {
		order = append(order, s)
	}
	for _, s := range order {
		c.add(pkt(s, 1000), 1000+int64(s)*1000) // delay s µs
	}
	c.add([]byte{1, 2, 3}, 0) // too short to carry a number: ignored
	recv, ooo, dups, jumps, lat := totals([]*flowCheck{c})
	if recv != 30 || ooo != 1 || dups != 1 || jumps != 1 {
		t.Errorf("received %d, out of order %d, duplicates %d, jumps %d; want 30, 1, 1, 1", recv, ooo, dups, jumps)
	}
	if c.packets.Load() != uint64(len(order)) {
		t.Errorf("packets %d, want %d (every datagram read)", c.packets.Load(), len(order))
	}
	// Every 4th datagram is sampled: the 4th, 8th, … in arrival order.
	if len(lat) != len(order)/4 || lat[0] != float64(order[3]) {
		t.Errorf("delay samples %v", lat)
	}
}

// TestSocketDrops: datagrams sent to a socket with a small receive buffer
// that nobody reads are either still queued or counted by socketDrops;
// together they are every datagram sent, and some were dropped.
func TestSocketDrops(t *testing.T) {
	ns := testbedtest.NewNS(t, "mfsd")
	const sent = 2000
	var rx *net.UDPConn
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		rx = c
		if err := c.SetReadBuffer(64 << 10); err != nil {
			return err
		}
		tx, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer tx.Close()
		msg := make([]byte, 1000)
		for range sent {
			if _, err := tx.Write(msg); err != nil {
				return err
			}
		}
		return nil
	})
	if rx != nil {
		defer rx.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	drops := socketDrops([]*net.UDPConn{rx})
	queued := 0
	buf := make([]byte, 2048)
	for {
		rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := rx.Read(buf); err != nil {
			break
		}
		queued++
	}
	t.Logf("%d sent, %d queued, %d dropped", sent, queued, drops)
	if drops <= 0 || int64(queued)+drops != sent {
		t.Errorf("%d queued + %d dropped, want %d in all with some dropped", queued, drops, sent)
	}
}
