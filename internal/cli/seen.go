package cli

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/atomicfile"
)

// The CLI remembers the newest state of each deployment it has verified, so that a
// Coordinator whose state went backwards since (its whole data directory restored from an
// older copy, which the Coordinator's own check cannot tell from a genuine state) is refused:
//
//   - the state version and hash (api.Status), per deployment root, in
//     <config>/deployments/<root SHA-256>/state-version.json: a lower version, or the same
//     version with another hash (a fork), is refused;
//   - the audit head, per Coordinator address beside its pinned root (audit-head.json, as
//     before): a lower sequence number, or the same one with another hash, under the same
//     root is refused. A head signed by another root (the pin was replaced) is not compared.
//
// Both are remembered only after everything else verified, and only move forward.

// ErrStateWentBackwards is wrapped by the errors that refuse a Coordinator whose state is
// older than (or forked from) one seen before.
var ErrStateWentBackwards = errors.New("coordinator state went backwards")

// seenState is what state-version.json holds.
type seenState struct {
	StateVersion uint64    `json:"state_version"`
	StateHash    string    `json:"state_hash"`
	SeenAt       time.Time `json:"seen_at"`
	Coordinator  string    `json:"coordinator"`
}

var stateHashHex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// seenStatePath is where the newest state seen of the deployment with root is kept.
func (a *app) seenStatePath(f *connFlags, root *x509.Certificate) (string, error) {
	dir, err := a.configDir(f)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "deployments", fingerprint(root), "state-version.json"), nil
}

// checkSeenState refuses st if its state version is older than, or forked from, the newest
// seen of the deployment with root, and otherwise remembers it. A Coordinator that reports no
// state version (0: one from before versions, or a new state) is compared like any other, so
// it is refused once a version was seen.
func (a *app) checkSeenState(f *connFlags, root *x509.Certificate, st *api.Status) error {
	if st.StateVersion != 0 && !stateHashHex.MatchString(st.StateHash) {
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator reports state version %d with hash %q; expected 64 lowercase hex digits", st.StateVersion, truncate(st.StateHash, 80)))
	}
	p, err := a.seenStatePath(f, root)
	if err != nil {
		return err
	}
	b, err := readBounded(p, 64<<10)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		var old seenState
		if err := json.Unmarshal(b, &old); err != nil {
			return fmt.Errorf("saved state version %s: %w (delete it to start over)", p, err)
		}
		when := old.SeenAt.UTC().Format(time.RFC3339)
		switch {
		case st.StateVersion < old.StateVersion:
			return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("%w: state version %d seen on %s, now %d (was its data directory restored from an older copy? remembered in %s)",
				ErrStateWentBackwards, old.StateVersion, when, st.StateVersion, p))
		case st.StateVersion == old.StateVersion && st.StateHash != old.StateHash:
			return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("%w: state version %d seen on %s with hash %s, now the same version with hash %s: the state forked (remembered in %s)",
				ErrStateWentBackwards, old.StateVersion, when, old.StateHash, st.StateHash, p))
		case st.StateVersion == old.StateVersion:
			return nil
		}
	}
	if st.StateVersion == 0 {
		return nil // nothing to remember
	}
	out, err := json.MarshalIndent(seenState{StateVersion: st.StateVersion, StateHash: st.StateHash, SeenAt: time.Now().UTC(), Coordinator: f.addr}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(p, append(out, '\n'), 0o600)
}

// checkSeenHead refuses h if the audit head saved for the Coordinator at f.addr, signed by
// root too, is newer than h or names the same entry with another hash. saved is when the
// saved head was written.
func checkSeenHead(old *audit.Head, saved time.Time, root *x509.Certificate, h *audit.Head) error {
	if old == nil || root == nil || old.Verify(root) != nil {
		return nil // none, or of another deployment: nothing to compare
	}
	when := saved.UTC().Format(time.RFC3339)
	switch {
	case h.Seq < old.Seq:
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("%w: audit head entry %d seen on %s, now entry %d", ErrStateWentBackwards, old.Seq, when, h.Seq))
	case h.Seq == old.Seq && h.Hash != old.Hash:
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("%w: audit head entry %d seen on %s with hash %s, now the same entry with hash %s: the log forked",
			ErrStateWentBackwards, old.Seq, when, old.Hash, h.Hash))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
