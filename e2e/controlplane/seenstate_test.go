package controlplane

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestCLIRefusesOlderState: a host restores a Coordinator's whole data directory from a copy
// taken before its manifest was set. The Coordinator accepts that (the local record of the
// newest state version is in the same directory), but a CLI that verified the newer state
// refuses it, naming the versions and when it saw the newer one: cloister verify and cloister
// status. (The Coordinator listens on new ports at each start here, so the CLI's memory, kept
// per deployment root, also spans addresses.)
func TestCLIRefusesOlderState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	data := e.Path("data")
	co := e.StartCoordinator(t, "coordinator", p, data, nil)
	e.MustCLI(t, "verify", "--coordinator", co.Addrs.Client, "--simulation", p.Dir())
	co.Stop(t)
	old := snapshot(t, data)

	co.Start(t, nil)
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"secrets": map[string]any{"key": map[string]any{"type": "symmetric-key", "size": 256}}}
	if _, err := client.New(co.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	e.MustCLI(t, "verify", "--coordinator", co.Addrs.Client, "--simulation", p.Dir())
	e.MustCLI(t, "status", "--coordinator", co.Addrs.Client)
	at := co.Addrs
	co.Stop(t)

	for name, b := range old {
		e2etest.WriteFile(t, filepath.Join(data, name), b, 0o600)
	}
	co.Start(t, &at) // where the CLI pinned it, for cloister status
	want := regexp.MustCompile(`coordinator state went backwards: state version (\d+) seen on \d{4}-\d\d-\d\dT[0-9:]+Z, now (\d+)`)
	for _, args := range [][]string{
		{"verify", "--coordinator", co.Addrs.Client, "--simulation", p.Dir()},
		{"status", "--coordinator", co.Addrs.Client},
	} {
		r := e.CLI(t, args...)
		got := want.FindStringSubmatch(r.Stderr)
		if r.Code == 0 || got == nil {
			t.Errorf("%v\nwant a refusal: coordinator state went backwards: state version N seen on DATE, now M", r)
			continue
		}
		t.Logf("refused: %s", got[0])
	}
	co.Stop(t)
}
