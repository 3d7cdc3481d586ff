package server

import (
	"testing"
	"time"
)

func TestRefusalLimiter(t *testing.T) {
	l := newRefusalLimiter()
	t0 := time.Unix(1_000_000, 0)
	allowed := 0
	for range 3 * refusalBurst {
		if ok, _ := l.Allow(t0); ok {
			allowed++
		}
	}
	if allowed != refusalBurst {
		t.Errorf("a burst at one instant allowed %d lines, want %d", allowed, refusalBurst)
	}
	// A second later the bucket holds refusalRate tokens; the first line says how many were
	// left out.
	ok, skipped := l.Allow(t0.Add(time.Second))
	if !ok || skipped != 2*refusalBurst {
		t.Errorf("after a second: allow = %v, skipped %d; want true, %d", ok, skipped, 2*refusalBurst)
	}
	for i := 1; i < refusalRate; i++ {
		if ok, skipped := l.Allow(t0.Add(time.Second)); !ok || skipped != 0 {
			t.Fatalf("line %d in the second second: %v, %d", i, ok, skipped)
		}
	}
	if ok, _ := l.Allow(t0.Add(time.Second)); ok {
		t.Errorf("more than refusalRate lines in a second")
	}
	// The bucket never holds more than the burst, however long it was idle.
	allowed = 0
	for range 3 * refusalBurst {
		if ok, _ := l.Allow(t0.Add(time.Hour)); ok {
			allowed++
		}
	}
	if allowed != refusalBurst {
		t.Errorf("after an idle hour a burst allowed %d, want %d", allowed, refusalBurst)
	}
}
