package server

import "github.com/cloister-dev/cloister/internal/ratelog"

// Refused requests are logged at most refusalRate per second on average, in bursts of up to
// refusalBurst: anyone who can reach an API can make it refuse, and the log must not become
// the way to fill a disk. Every refusal is still counted in cloister_api_requests_total, and
// the number of refusals left out is logged with the next line that is written and counted in
// cloister_api_refusals_unlogged_total.
const (
	refusalRate  = 20
	refusalBurst = 100
)

// newRefusalLimiter returns the limiter of one API's refusal log lines.
func newRefusalLimiter() *ratelog.Limiter {
	return &ratelog.Limiter{Rate: refusalRate, Burst: refusalBurst}
}
