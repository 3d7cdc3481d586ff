package launcher

import (
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/api"
)

// stateSeen is the newest Coordinator state a launch was answered from: the state version and
// hash of its last accepted activation (api.ActivationResponse.StateVersion), and when. The
// launcher is the container's init and re-activates to renew, so it remembers this for its
// lifetime (not across restarts: a new container is a new instance, and its first
// activation has nothing to compare with).
//
// A renewal answered from a lower state version, or from the same version with another hash
// (a forked state), is refused: the Coordinator's state.db was replaced by an older copy,
// which its own rollback check accepts when the whole data directory was restored. Failing
// closed for a running application means installing nothing from that state: the application
// keeps its current certificate and files until the certificate expires (then it runs with an
// expired certificate that peers refuse, logged as such), and the launcher asks again every
// finalRefusalBackoff in case the Coordinator is restored to a newer state. It does not stop
// the application: stopping it would hand whoever rolled the Coordinator back an outage,
// while the certificate it keeps grants nothing the newer state had not granted.
type stateSeen struct {
	version uint64
	hash    string
	at      time.Time
}

// seenFrom is the state of an accepted activation.
func seenFrom(resp *api.ActivationResponse, at time.Time) stateSeen {
	return stateSeen{version: resp.StateVersion, hash: resp.StateHash, at: at}
}

// StateRolledBackError is a renewal refused because the Coordinator's state went backwards.
type StateRolledBackError struct {
	Seen, Now         uint64
	SeenHash, NowHash string
	SeenAt            time.Time
}

func (e *StateRolledBackError) Error() string {
	if e.Now == e.Seen {
		return fmt.Sprintf("coordinator state forked: state version %d seen on %s with hash %s, now the same version with hash %s; the renewal is refused and the application keeps its current certificate",
			e.Seen, e.SeenAt.UTC().Format(time.RFC3339), e.SeenHash, e.NowHash)
	}
	return fmt.Sprintf("coordinator state went backwards: state version %d seen on %s, now %d; the renewal is refused and the application keeps its current certificate",
		e.Seen, e.SeenAt.UTC().Format(time.RFC3339), e.Now)
}

// check returns the state to remember after accepting resp, or an error if resp comes from a
// state older than (or forked from) the one seen. A Coordinator that reports no version (0:
// one from before state versions) is refused once a version was seen.
func (s stateSeen) check(resp *api.ActivationResponse, at time.Time) (stateSeen, error) {
	next := seenFrom(resp, at)
	switch {
	case s.version == 0 && s.hash == "":
		return next, nil
	case next.version < s.version,
		next.version == s.version && next.hash != s.hash:
		return s, &StateRolledBackError{Seen: s.version, Now: next.version, SeenHash: s.hash, NowHash: next.hash, SeenAt: s.at}
	}
	return next, nil
}
