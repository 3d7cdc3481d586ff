// Package ratelog bounds how many log lines a source anyone can trigger may write: a token
// bucket over lines, which reports how many were left out so that the next line written can
// say so. Refusals of requests from the network use it: the log must not become the way to
// fill a disk.
package ratelog

import (
	"sync"
	"time"
)

// Limiter allows Rate lines per second on average, in bursts of up to Burst. The zero value
// allows nothing; set both fields before use. It is safe for concurrent use.
type Limiter struct {
	Rate, Burst float64

	mu      sync.Mutex // guards the fields below
	tokens  float64
	last    time.Time
	skipped uint64 // lines not allowed since the last one that was
}

// Allow reports whether a line at now may be written and, if so, how many were left out
// before it.
func (l *Limiter) Allow(now time.Time) (ok bool, skipped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = l.Burst
	} else if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.Burst, l.tokens+d.Seconds()*l.Rate)
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
