package podman

import (
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// coordinator is the scenario's Coordinator process and the deployment root a client pinned
// when it verified it.
type coordinator struct {
	*e2etest.Coordinator
	root *x509.Certificate
}

// startCoordinator starts `cloister coordinator` on a new simulated platform with loopback
// listeners, verifies it as an outside client would and pins its root. The test stops it.
func startCoordinator(t *testing.T, e *e2etest.Env) *coordinator {
	t.Helper()
	// The containers read the platform through a bind mount.
	if err := os.Chmod(e.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := e.StartCoordinator(t, "coordinator", e.NewPlatform(t, "sim"), e.Path("data"), nil)
	v, err := client.Verify(t.Context(), c.Addrs.Client, c.Expect())
	if err != nil {
		t.Fatalf("verify the Coordinator: %v", err)
	}
	return &coordinator{Coordinator: c, root: v.Root}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// contains reports whether s holds every one of subs.
func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
