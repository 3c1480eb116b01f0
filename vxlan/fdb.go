package vxlan

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// FDBKey identifies a station on an overlay network.
type FDBKey struct {
	VNI uint32
	MAC [6]byte
}

// fdbEntry is one station. An entry is never changed after it is published
// except for seen; a station that moves gets a new entry in the same slot.
type fdbEntry struct {
	mac    [6]byte
	vtep   [4]byte
	static bool
	hash   uint64       // of mac, with the FDB's seed
	seen   atomic.Int64 // last time (caller's clock) the station was heard
}

// tombstone marks a slot whose entry was removed: readers and inserts probe
// past it; an insert may reuse it.
var tombstone = &fdbEntry{}

// macTable is one VNI's open-addressing hash table (linear probing) of
// entry pointers. Readers load slots atomically and never lock; writers
// (holding the VNI's mutex) store into empty or tombstone slots, replace an
// entry in place, or publish a grown table. The slot count is a power of
// two; live + tombstones stays at most 3/4 of it.
type macTable struct {
	slots []atomic.Pointer[fdbEntry]
	mask  uint64
	used  int // live + tombstones; only under the VNI's mutex
}

func newMACTable(n int) *macTable {
	return &macTable{slots: make([]atomic.Pointer[fdbEntry], n), mask: uint64(n - 1)}
}

// vniTable is the part of the database for one VNI.
type vniTable struct {
	mu      sync.Mutex // serialises this VNI's writers
	tab     atomic.Pointer[macTable]
	flood   atomic.Pointer[[][4]byte]
	live    atomic.Int64 // entries, static ones included
	learned atomic.Int64 // learned (not static) entries; Limit applies to them
}

// rateState counts one VTEP's changes to the table in the current second
// (fixed window on the caller's clock).
type rateState struct {
	window atomic.Int64
	n      atomic.Int64
}

// LearnResult is what Learn did.
type LearnResult uint8

// Results of Learn. Only LearnAdded and LearnMoved change the table;
// LearnFull and LearnRateLimited are refusals the caller should count.
const (
	// LearnKnown: the entry already said so; its time was refreshed.
	LearnKnown LearnResult = iota
	// LearnStatic: a static entry for the station says otherwise; unchanged.
	LearnStatic
	// LearnAdded: a new station was learned.
	LearnAdded
	// LearnMoved: the station was learned behind another VTEP than before.
	LearnMoved
	// LearnFull: not learned, the VNI already has Limit learned entries.
	LearnFull
	// LearnRateLimited: not learned, the VTEP has used up its changes for
	// this second (Rate).
	LearnRateLimited
)

// String returns a snake_case label: "known", "static", "added", "moved",
// "table_full", "rate_limited".
func (r LearnResult) String() string {
	switch r {
	case LearnKnown:
		return "known"
	case LearnStatic:
		return "static"
	case LearnAdded:
		return "added"
	case LearnMoved:
		return "moved"
	case LearnFull:
		return "table_full"
	case LearnRateLimited:
		return "rate_limited"
	}
	return "unknown"
}

// FDB is the forwarding database: (VNI, inner MAC) → remote VTEP, plus, per
// VNI, the flood list of VTEPs that receive broadcast, multicast and unknown
// unicast.
//
// Costs: readers (Lookup, Flood, and Learn of a station already known) take
// no lock and allocate nothing: one map access for the VNI, then a probe of
// the VNI's hash table through atomic loads. A change (a new or moved
// station, a static entry) locks only its VNI and costs O(1) amortised: it
// stores one slot, and doubles the table (copying its pointers) when it is
// three quarters used. The MAC hash is seeded per FDB, so that stations
// cannot be chosen to collide. Under a flood of new source MACs, Limit
// bounds each VNI's learned entries and Rate each VTEP's changes per
// second; a refused station is simply not learned (frames to it are
// flooded, as to any unknown station). Expire is O(table).
//
// The zero value is an empty database without limits, ready to use; all
// methods are safe for concurrent use. An FDB must not be copied after
// first use.
type FDB struct {
	vnis atomic.Pointer[map[uint32]*vniTable] // copied on a new VNI only
	mu   sync.Mutex                           // serialises adding VNIs and VTEP rate states

	rates atomic.Pointer[map[[4]byte]*rateState] // copied on a new VTEP only

	limit atomic.Int64 // learned entries per VNI; 0: no limit
	rate  atomic.Int64 // changes per VTEP per clock unit; 0: no limit

	seedOnce sync.Once
	seed     [2]uint64
}

// SetLimits sets the most learned (not static) entries a VNI may hold and
// the most changes (new or moved stations) Learn makes per VTEP per unit
// of the caller's clock; 0 means no limit. Entries already there stay.
func (f *FDB) SetLimits(limit, rate int) {
	f.limit.Store(int64(max(limit, 0)))
	f.rate.Store(int64(max(rate, 0)))
}

// hash returns the seeded hash of mac (a 128-bit multiply-fold mix).
func (f *FDB) hash(mac [6]byte) uint64 {
	f.seedOnce.Do(func() { f.seed = [2]uint64{rand.Uint64(), rand.Uint64() | 1} })
	m := uint64(binary.BigEndian.Uint32(mac[:4]))<<16 | uint64(binary.BigEndian.Uint16(mac[4:]))
	hi, lo := bits.Mul64(m^f.seed[0], 0x9E3779B97F4A7C15^f.seed[1])
	return hi ^ lo
}

func (f *FDB) vni(vni uint32) *vniTable {
	if m := f.vnis.Load(); m != nil {
		return (*m)[vni]
	}
	return nil
}

// vniOrNew returns vni's table, creating it.
func (f *FDB) vniOrNew(vni uint32) *vniTable {
	if v := f.vni(vni); v != nil {
		return v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.vnis.Load()
	if old != nil && (*old)[vni] != nil {
		return (*old)[vni]
	}
	next := make(map[uint32]*vniTable, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	v := &vniTable{}
	v.tab.Store(newMACTable(16))
	next[vni] = v
	f.vnis.Store(&next)
	return v
}

// find returns the entry for mac in t, or nil.
func (f *FDB) find(t *macTable, mac [6]byte) *fdbEntry {
	// An empty slot ends every probe sequence (used <= 3/4 of the
	// slots); the bound only guards against a table changing under a
	// reader.
	for i, n := f.hash(mac)&t.mask, 0; n < len(t.slots); i, n = (i+1)&t.mask, n+1 {
		e := t.slots[i].Load()
		if e == nil {
			return nil
		}
		if e != tombstone && e.mac == mac {
			return e
		}
	}
	return nil
}

// Lookup returns the VTEP behind (vni, mac).
func (f *FDB) Lookup(vni uint32, mac [6]byte) (vtep [4]byte, ok bool) {
	v := f.vni(vni)
	if v == nil {
		return vtep, false
	}
	if e := f.find(v.tab.Load(), mac); e != nil {
		return e.vtep, true
	}
	return vtep, false
}

// Flood returns the VTEPs that receive vni's broadcast, multicast and
// unknown unicast. The slice is shared: do not modify it.
func (f *FDB) Flood(vni uint32) [][4]byte {
	if v := f.vni(vni); v != nil {
		if p := v.flood.Load(); p != nil {
			return *p
		}
	}
	return nil
}

// Learn records that mac on vni was heard from vtep at time now (any clock
// the caller keeps, such as Unix seconds; Rate counts per unit of it). When
// the entry already says so it only refreshes the time, without a lock or
// an allocation. A static entry is never overwritten by learning. A new or
// moved station is learned unless the VNI is full (Limit, for a new one) or
// vtep has made Rate changes in this unit of time already.
func (f *FDB) Learn(vni uint32, mac [6]byte, vtep [4]byte, now int64) LearnResult {
	v := f.vni(vni)
	var e *fdbEntry
	if v != nil {
		e = f.find(v.tab.Load(), mac)
	}
	if e != nil && (e.vtep == vtep || e.static) {
		if e.seen.Load() != now {
			e.seen.Store(now)
		}
		if e.vtep == vtep {
			return LearnKnown
		}
		return LearnStatic
	}
	if l := f.limit.Load(); e == nil && v != nil && l > 0 && v.learned.Load() >= l {
		return LearnFull // cheap refusal, without the lock; set checks again
	}
	if !f.allow(vtep, now) {
		return LearnRateLimited
	}
	if v == nil {
		v = f.vniOrNew(vni)
	}
	return f.set(v, mac, vtep, false, now)
}

// allow spends one of vtep's changes for time now.
func (f *FDB) allow(vtep [4]byte, now int64) bool {
	limit := f.rate.Load()
	if limit == 0 {
		return true
	}
	var r *rateState
	if m := f.rates.Load(); m != nil {
		r = (*m)[vtep]
	}
	if r == nil {
		r = f.newRate(vtep)
	}
	// A fixed window: the first change of a new time unit resets the
	// count. Racing workers may each reset it, which only lets a few more
	// changes through.
	if w := r.window.Load(); w != now && r.window.CompareAndSwap(w, now) {
		r.n.Store(0)
	}
	return r.n.Add(1) <= limit
}

func (f *FDB) newRate(vtep [4]byte) *rateState {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.rates.Load()
	if old != nil && (*old)[vtep] != nil {
		return (*old)[vtep]
	}
	next := make(map[[4]byte]*rateState, 1)
	if old != nil {
		for k, r := range *old {
			next[k] = r
		}
	}
	r := &rateState{}
	r.window.Store(-1 << 63)
	next[vtep] = r
	f.rates.Store(&next)
	return r
}

// SetStatic installs a permanent entry that learning does not change and
// Expire does not remove. Limit and Rate do not apply to it.
func (f *FDB) SetStatic(vni uint32, mac [6]byte, vtep [4]byte) {
	f.set(f.vniOrNew(vni), mac, vtep, true, 0)
}

// set installs (mac → vtep) in v under v's lock.
func (f *FDB) set(v *vniTable, mac [6]byte, vtep [4]byte, static bool, now int64) LearnResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.tab.Load()
	h := f.hash(mac)
	// Probe to the station's slot, or to the empty slot that ends its
	// sequence (there always is one: used <= 3/4 of the slots), noting
	// the first reusable slot on the way.
	slot, free := -1, -1
	i := h & t.mask
	for {
		e := t.slots[i].Load()
		if e == nil {
			if free < 0 {
				free = int(i)
			}
			break
		}
		if e == tombstone {
			if free < 0 {
				free = int(i)
			}
		} else if e.mac == mac {
			slot = int(i)
			break
		}
		i = (i + 1) & t.mask
	}
	ne := &fdbEntry{mac: mac, vtep: vtep, static: static, hash: h}
	ne.seen.Store(now)
	if slot >= 0 {
		old := t.slots[slot].Load()
		switch {
		case old.static && !static:
			return LearnStatic // static wins
		case old.vtep == vtep && old.static == static:
			return LearnKnown // raced with an identical writer
		}
		if old.static != static {
			if static {
				v.learned.Add(-1)
			} else {
				v.learned.Add(1)
			}
		}
		t.slots[slot].Store(ne)
		return LearnMoved
	}
	if l := f.limit.Load(); !static && l > 0 && v.learned.Load() >= l {
		return LearnFull
	}
	switch {
	case t.slots[free].Load() == tombstone:
		t.slots[free].Store(ne)
	case (t.used+1)*4 > len(t.slots)*3:
		v.grow(t, ne)
	default:
		t.used++
		t.slots[free].Store(ne)
	}
	v.live.Add(1)
	if !static {
		v.learned.Add(1)
	}
	return LearnAdded
}

// grow publishes a copy of t without its tombstones, plus e, with at least
// twice as many slots as live entries (never fewer than t has). Readers of
// t still find every entry there until they load the new table.
func (v *vniTable) grow(t *macTable, e *fdbEntry) {
	n := len(t.slots)
	for int(v.live.Load()+1)*2 > n {
		n *= 2
	}
	next := newMACTable(n)
	for i := range t.slots {
		if old := t.slots[i].Load(); old != nil && old != tombstone {
			next.put(old)
		}
	}
	next.put(e)
	v.tab.Store(next)
}

// put stores e in the first empty slot of its probe sequence; only for a
// table that is not published yet.
func (t *macTable) put(e *fdbEntry) {
	i := e.hash & t.mask
	for t.slots[i].Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(e)
	t.used++
}

// SetFlood replaces vni's flood list with a copy of vteps; an empty list
// removes it.
func (f *FDB) SetFlood(vni uint32, vteps [][4]byte) {
	v := f.vniOrNew(vni)
	if len(vteps) == 0 {
		v.flood.Store(nil)
		return
	}
	c := append([][4]byte(nil), vteps...)
	v.flood.Store(&c)
}

// Expire removes learned entries last heard before cutoff (same clock as
// Learn) and returns how many it removed.
func (f *FDB) Expire(cutoff int64) int {
	m := f.vnis.Load()
	if m == nil {
		return 0
	}
	removed := 0
	for _, v := range *m {
		v.mu.Lock()
		t := v.tab.Load()
		for i := range t.slots {
			e := t.slots[i].Load()
			if e == nil || e == tombstone || e.static || e.seen.Load() >= cutoff {
				continue
			}
			t.slots[i].Store(tombstone)
			v.live.Add(-1)
			v.learned.Add(-1)
			removed++
		}
		v.mu.Unlock()
	}
	return removed
}

// Len returns the number of entries.
func (f *FDB) Len() int {
	n := 0
	if m := f.vnis.Load(); m != nil {
		for _, v := range *m {
			n += int(v.live.Load())
		}
	}
	return n
}

// Learned returns the number of learned (not static) entries of vni.
func (f *FDB) Learned(vni uint32) int {
	if v := f.vni(vni); v != nil {
		return int(v.learned.Load())
	}
	return 0
}
