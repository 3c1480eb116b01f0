package vxlan

import (
	"sync"
	"sync/atomic"
)

// FDBKey identifies a station on an overlay network.
type FDBKey struct {
	VNI uint32
	MAC [6]byte
}

// fdbEntry is one station. Entries are shared between snapshots; only seen
// changes after creation.
type fdbEntry struct {
	vtep   [4]byte
	static bool
	seen   atomic.Int64 // last time (caller's clock) the station was heard
}

// fdbTable is an immutable snapshot of the database.
type fdbTable struct {
	entries map[FDBKey]*fdbEntry
	flood   map[uint32][][4]byte
}

// FDB is the forwarding database: (VNI, inner MAC) → remote VTEP, plus, per
// VNI, the flood list of VTEPs that receive broadcast, multicast and unknown
// unicast. Readers (Lookup, Flood, and Learn when nothing changes) take no
// lock: they load an immutable snapshot through an atomic pointer. Writers
// serialise on a mutex and publish a new snapshot, copying the table, so a
// change costs O(entries); that suits the hundreds of stations of a
// container host, not a table that changes on every packet.
//
// The zero value is an empty database ready to use; all methods are safe for
// concurrent use. An FDB must not be copied after first use.
type FDB struct {
	cur atomic.Pointer[fdbTable]
	mu  sync.Mutex // serialises writers
}

var emptyTable = &fdbTable{}

func (f *FDB) load() *fdbTable {
	if t := f.cur.Load(); t != nil {
		return t
	}
	return emptyTable
}

// Lookup returns the VTEP behind (vni, mac).
func (f *FDB) Lookup(vni uint32, mac [6]byte) (vtep [4]byte, ok bool) {
	e := f.load().entries[FDBKey{vni, mac}]
	if e == nil {
		return vtep, false
	}
	return e.vtep, true
}

// Flood returns the VTEPs that receive vni's broadcast, multicast and
// unknown unicast. The slice is shared: do not modify it.
func (f *FDB) Flood(vni uint32) [][4]byte { return f.load().flood[vni] }

// Learn records that mac on vni was heard from vtep at time now (any clock
// the caller keeps, such as Unix seconds). When the entry already says so it
// only refreshes the time, without a lock or an allocation; otherwise it
// publishes a new snapshot. A static entry is never overwritten by
// learning. It reports whether the table changed.
func (f *FDB) Learn(vni uint32, mac [6]byte, vtep [4]byte, now int64) bool {
	k := FDBKey{vni, mac}
	if e := f.load().entries[k]; e != nil && (e.vtep == vtep || e.static) {
		if e.seen.Load() != now {
			e.seen.Store(now)
		}
		return false
	}
	return f.set(k, vtep, false, now)
}

// SetStatic installs a permanent entry that learning does not change and
// Expire does not remove.
func (f *FDB) SetStatic(vni uint32, mac [6]byte, vtep [4]byte) {
	f.set(FDBKey{vni, mac}, vtep, true, 0)
}

func (f *FDB) set(k FDBKey, vtep [4]byte, static bool, now int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.load()
	if e := old.entries[k]; e != nil && (e.vtep == vtep && e.static == static || e.static && !static) {
		return false // raced with an identical writer, or static wins
	}
	next := &fdbTable{entries: make(map[FDBKey]*fdbEntry, len(old.entries)+1), flood: old.flood}
	for key, e := range old.entries {
		next.entries[key] = e
	}
	e := &fdbEntry{vtep: vtep, static: static}
	e.seen.Store(now)
	next.entries[k] = e
	f.cur.Store(next)
	return true
}

// SetFlood replaces vni's flood list with a copy of vteps; an empty list
// removes it.
func (f *FDB) SetFlood(vni uint32, vteps [][4]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.load()
	next := &fdbTable{entries: old.entries, flood: make(map[uint32][][4]byte, len(old.flood)+1)}
	for k, v := range old.flood {
		next.flood[k] = v
	}
	if len(vteps) == 0 {
		delete(next.flood, vni)
	} else {
		next.flood[vni] = append([][4]byte(nil), vteps...)
	}
	f.cur.Store(next)
}

// Expire removes learned entries last heard before cutoff (same clock as
// Learn) and returns how many it removed.
func (f *FDB) Expire(cutoff int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.load()
	next := &fdbTable{entries: make(map[FDBKey]*fdbEntry, len(old.entries)), flood: old.flood}
	removed := 0
	for k, e := range old.entries {
		if !e.static && e.seen.Load() < cutoff {
			removed++
			continue
		}
		next.entries[k] = e
	}
	if removed > 0 {
		f.cur.Store(next)
	}
	return removed
}

// Len returns the number of entries.
func (f *FDB) Len() int { return len(f.load().entries) }
