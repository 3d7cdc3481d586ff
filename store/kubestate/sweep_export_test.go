package kubestate

import "time"

// SetClockForTest moves the sweeper's clock by d.
func (r *Remote) SetClockForTest(d time.Duration) {
	r.now = func() time.Time { return time.Now().Add(d) }
}
