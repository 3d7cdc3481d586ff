package enclave

import "github.com/cloister-dev/cloister/internal/gobuildid"

// Launcher identifies the launcher binary an image was converted with (or a host manifest
// signed for): the binary whose hash is half of the simulated MRENCLAVE ([SimMRENCLAVE]).
//
// Recording it lets a launcher in simulation take its own hash from the signed manifest
// instead of hashing its whole executable at every start (3.7 ms of CPU for a 6.3 MB launcher,
// a quarter of a start): it checks that it is this binary by its size and Go build ID, and
// only when no build ID was recorded, or it cannot read its own, does it hash itself and
// compare. A launcher of another size or build ID is refused at once. The converter
// (image.DescribeLauncher) records a build ID only if its last part is the Go toolchain's
// content hash of the file, so another build of the launcher has another ID, and one pinned
// with -ldflags=-buildid is not recorded. What the check cannot catch is a binary changed
// after linking while keeping its size and build ID: by accident only in the GNU build ID
// note, which cmd/go leaves out of its hash; on purpose anywhere. Neither matters in
// simulation, where whoever can run such a launcher can as well forge its quotes with the
// simulated platform. Under Gramine the launcher is a trusted file of the Gramine manifest and
// SGX measures it; this record is not used.
type Launcher struct {
	// SHA256 is the SHA-256 digest of the launcher binary.
	SHA256 Digest `json:"sha256"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// GoBuildID is its Go build ID (as gobuildid.Read reads it), recorded only if the ID's last
	// part is the Go toolchain's content hash of the file; empty otherwise.
	GoBuildID string `json:"go_build_id,omitempty"`
}

// LauncherFieldTag is the struct tag of [Manifest.Launcher]. encoding/json reads it at run
// time, so it is in every launcher binary that knows the record and in none older: a converter
// looks for it in the launcher it is given.
const LauncherFieldTag = `json:"launcher,omitempty"`

// MaxLauncherSize bounds [Launcher.Size]: 1 GiB, far above any launcher.
const MaxLauncherSize = 1 << 30

// validateLauncher checks the launcher record, if any.
func (m *Manifest) validateLauncher(p *problems) {
	l := m.Launcher
	if l == nil {
		return
	}
	if l.SHA256.IsZero() {
		p.addf("launcher.sha256: missing")
	}
	if l.Size <= 0 || l.Size > MaxLauncherSize {
		p.addf("launcher.size: expected 1..%d, found %d", MaxLauncherSize, l.Size)
	}
	if why := gobuildid.Check(l.GoBuildID); why != "" {
		p.addf("launcher.go_build_id %q: %s", l.GoBuildID, why)
	}
}
