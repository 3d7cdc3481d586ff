package coordinator

import (
	"net/http"

	"github.com/cloister-dev/cloister/store"
)

// FailResealOnce makes the next reseal of a recovered key fail with err, after the recovery
// entry was committed: what a crash between the two leaves.
func FailResealOnce(err error) {
	resealRecovered = func(db *store.DB) error {
		resealRecovered = (*store.DB).Reseal
		return err
	}
}

// RecoveryClientHandler is the client API of c's recovery-mode server; nil if c did not start
// in recovery mode.
func (c *Coordinator) RecoveryClientHandler() http.Handler {
	if c.rsrv == nil {
		return nil
	}
	return c.rsrv.ClientHandler()
}
