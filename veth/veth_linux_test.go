package veth

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"

	"mflow/bench/testbed/testbedtest"
)

// TestVethNoAllocs: a veth pair a/b in a fresh namespace, each end served
// as a Device; frames written on b arrive, intact and in order, by Read
// on a, and neither WriteFrames nor Read allocates per frame.
func TestVethNoAllocs(t *testing.T) {
	ns := testbedtest.NewNS(t, "mfva")
	// No IPv6 router solicitations or MLD reports among our frames.
	if err := ns.DisableIPv6(); err != nil {
		t.Fatal(err)
	}
	var a, b *Device
	err := ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb"}); err != nil {
			return err
		}
		var err error
		if a, err = Open("va", 1500, ""); err != nil {
			return err
		}
		t.Cleanup(func() { a.Close() })
		if b, err = Open("vb", 1500, ""); err != nil {
			return err
		}
		t.Cleanup(func() { b.Close() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	const n, off = 32, 12
	frames := make([][]byte, n)
	for i := range frames {
		f := make([]byte, off+60+i)
		copy(f[off:], []byte{0x02, 0, 0, 0, 0, 0xa, 0x02, 0, 0, 0, 0, 0xb, 0x88, 0xb5}) // local experimental EtherType
		f[off+14] = byte(i)
		frames[i] = f
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, n)
	roundTrip := func() {
		if k, err := b.WriteFrames(frames, off); k != n || err != nil {
			t.Fatalf("write: %d of %d, %v", k, n, err)
		}
		got := 0
		for got < n {
			m, err := a.Read(bufs[got:], sizes[got:], 4)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			got += m
		}
		for i := range n {
			if sizes[i] != len(frames[i])-off || bufs[i][4+14] != byte(i) {
				t.Fatalf("frame %d: %d bytes, tag %d; want %d bytes, tag %d", i, sizes[i], bufs[i][4+14], len(frames[i])-off, i)
			}
		}
	}
	roundTrip() // warm up
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if allocs := testing.AllocsPerRun(50, roundTrip); allocs != 0 {
		t.Errorf("%v allocations per round trip of %d frames", allocs, n)
	}
	sa, sb := a.Stats(), b.Stats()
	if sb.WritePackets != 51*n+n || sb.WriteErrors != 0 || sa.Frames != sb.WritePackets {
		t.Errorf("written %d (errors %d), read %d; want %d", sb.WritePackets, sb.WriteErrors, sa.Frames, 52*n)
	}
}
