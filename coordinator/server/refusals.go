package server

import (
	"sync"
	"time"
)

// Refused requests are logged at most refusalRate per second on average, in bursts of up to
// refusalBurst: anyone who can reach an API can make it refuse, and the log must not become
// the way to fill a disk. Every refusal is still counted in cloister_api_requests_total, and
// the number of refusals left out is logged with the next line that is written and counted in
// cloister_api_refusals_unlogged_total.
const (
	refusalRate  = 20
	refusalBurst = 100
)

// refusalLimiter is a token bucket over refusal log lines. It is safe for concurrent use.
type refusalLimiter struct {
	mu      sync.Mutex // guards the fields below
	tokens  float64
	last    time.Time
	skipped uint64 // refusals not logged since the last line that was
}

// allow reports whether a refusal at now may be logged and, if so, how many were left out
// before it.
func (l *refusalLimiter) allow(now time.Time) (ok bool, skipped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = refusalBurst
	} else if d := now.Sub(l.last); d > 0 {
		l.tokens = min(refusalBurst, l.tokens+d.Seconds()*refusalRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.skipped++
		return false, 0
	}
	l.tokens--
	skipped, l.skipped = l.skipped, 0
	return true, skipped
}
