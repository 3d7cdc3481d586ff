package coordinator

import "github.com/cloister-dev/cloister/store"

// FailResealOnce makes the next reseal of a recovered key fail with err, after the recovery
// entry was committed: what a crash between the two leaves.
func FailResealOnce(err error) {
	resealRecovered = func(db *store.DB) error {
		resealRecovered = (*store.DB).Reseal
		return err
	}
}
