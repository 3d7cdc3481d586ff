package verify

import (
	"fmt"
	"testing"

	"github.com/cloister-dev/cloister/sgx"
)

// TestConverge checks convergeTcbStatusWithQeTcbStatus of Intel's QVL for every pair.
func TestConverge(t *testing.T) {
	for _, tc := range []struct {
		platform TCBStatus
		qe       map[TCBStatus]TCBStatus // QE status → converged
	}{
		{UpToDate, map[TCBStatus]TCBStatus{UpToDate: UpToDate, OutOfDate: OutOfDate, Revoked: Revoked}},
		{SWHardeningNeeded, map[TCBStatus]TCBStatus{UpToDate: SWHardeningNeeded, OutOfDate: OutOfDate, Revoked: Revoked}},
		{ConfigurationNeeded, map[TCBStatus]TCBStatus{UpToDate: ConfigurationNeeded, OutOfDate: OutOfDateConfigurationNeeded, Revoked: Revoked}},
		{ConfigurationAndSWHardeningNeeded, map[TCBStatus]TCBStatus{UpToDate: ConfigurationAndSWHardeningNeeded, OutOfDate: OutOfDateConfigurationNeeded, Revoked: Revoked}},
		{OutOfDate, map[TCBStatus]TCBStatus{UpToDate: OutOfDate, OutOfDate: OutOfDate, Revoked: Revoked}},
		{OutOfDateConfigurationNeeded, map[TCBStatus]TCBStatus{UpToDate: OutOfDateConfigurationNeeded, OutOfDate: OutOfDateConfigurationNeeded, Revoked: Revoked}},
		{Revoked, map[TCBStatus]TCBStatus{UpToDate: Revoked, OutOfDate: Revoked, Revoked: Revoked}},
	} {
		for qe, want := range tc.qe {
			if got := converge(tc.platform, qe); got != want {
				t.Errorf("converge(%s, QE %s) = %s, want %s", tc.platform, qe, got, want)
			}
		}
		// QVL treats every QE status other than UpToDate and Revoked as out of date.
		if got, want := converge(tc.platform, SWHardeningNeeded), converge(tc.platform, OutOfDate); got != want {
			t.Errorf("converge(%s, QE SWHardeningNeeded) = %s, want %s (as OutOfDate)", tc.platform, got, want)
		}
	}
}

func TestMatchLevel(t *testing.T) {
	lvl := func(c0, c1 uint8, pce uint16, st TCBStatus) TCBLevel {
		return TCBLevel{CompSVN: [16]uint8{c0, c1}, PCESVN: pce, Status: st}
	}
	ti := &TCBInfo{Levels: []TCBLevel{
		lvl(4, 4, 10, OutOfDate), // listed first but lower: QVL orders levels highest first
		lvl(6, 6, 11, UpToDate),
		lvl(5, 5, 11, SWHardeningNeeded),
		lvl(5, 5, 11, ConfigurationNeeded), // equal to the previous one: the first listed wins
		lvl(5, 7, 9, ConfigurationAndSWHardeningNeeded),
	}}
	for _, tc := range []struct {
		comps [16]uint8
		pce   uint16
		want  int
	}{
		{[16]uint8{6, 6}, 11, 1},
		{[16]uint8{9, 9}, 20, 1},
		{[16]uint8{5, 6}, 11, 2},
		{[16]uint8{5, 7}, 10, 4},
		{[16]uint8{4, 4}, 10, 0},
		{[16]uint8{6, 7}, 9, 4},
		{[16]uint8{6, 6}, 9, -1},
		{[16]uint8{3, 9}, 20, -1},
		{[16]uint8{6, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8, -1},
	} {
		if got := ti.matchLevel(&sgx.PCKTCB{CompSVN: tc.comps, PCESVN: tc.pce}); got != tc.want {
			t.Errorf("matchLevel(%v, %d) = %d, want %d", tc.comps[:2], tc.pce, got, tc.want)
		}
	}
	qi := &QEIdentity{Levels: []QETCBLevel{{ISVSVN: 2}, {ISVSVN: 8}, {ISVSVN: 6}, {ISVSVN: 6}}}
	for svn, want := range map[uint16]int{9: 1, 8: 1, 7: 2, 6: 2, 5: 0, 2: 0, 1: -1} {
		if got := qi.matchLevel(svn); got != want {
			t.Errorf("QE matchLevel(%d) = %d, want %d", svn, got, want)
		}
	}
}

// TestCacheBound checks that a cache never holds more than its size and keeps entries in use.
func TestCacheBound(t *testing.T) {
	c := newCache[int](8)
	key := func(i int) (k [32]byte) {
		copy(k[:], fmt.Sprint(i))
		return k
	}
	hot := key(-1)
	c.put(hot, -1)
	for i := range 100 {
		c.put(key(i), i)
		if _, ok := c.get(hot); !ok {
			t.Fatalf("entry in use evicted after %d puts", i+1)
		}
		if n := c.len(); n > 8 {
			t.Fatalf("cache holds %d entries, more than its size 8", n)
		}
	}
	if _, ok := c.get(key(0)); ok {
		t.Errorf("old entry 0 still cached after 100 puts")
	}
	if v, ok := c.get(key(99)); !ok || v != 99 {
		t.Errorf("get(99) = %d, %v; want the latest entry", v, ok)
	}
	off := newCache[int](0)
	off.put(hot, 1)
	if _, ok := off.get(hot); ok || off.len() != 0 {
		t.Errorf("disabled cache kept an entry")
	}
}
