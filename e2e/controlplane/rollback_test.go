package controlplane

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestRolledBackStateRefused: a host keeps a copy of a Coordinator's state.db from before its
// first manifest, and puts it back after the manifest was set. The Coordinator refuses to
// start, naming both state versions, and changes no file; with the newest state.db back it
// starts where it was. Restoring the whole directory from the copy is accepted: the local
// record of the newest version is on the same disk (see docs/architecture.md).
func TestRolledBackStateRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	data := e.Path("data")
	co := e.StartCoordinator(t, "coordinator", p, data, nil)
	co.Stop(t)
	beforeManifest := snapshot(t, data)

	co.Start(t, nil)
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(co.Addrs.Client, v.Root)
	m := map[string]any{"secrets": map[string]any{"key": map[string]any{"type": "symmetric-key", "size": 256}}}
	if _, err := c.SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	co.Stop(t)
	newest := snapshot(t, data)

	e2etest.WriteFile(t, filepath.Join(data, "state.db"), beforeManifest["state.db"], 0o600)
	before := snapshot(t, data)
	code, out := e.RunFailingCoordinator(t, "coordinator on an older state.db", p, data)
	if code != 1 {
		t.Errorf("the Coordinator exited with code %d on an older state.db, want 1", code)
	}
	// The versions: the copy's, and the newest (at least the one the status showed; the
	// stop recorded more, such as the audit log's hour closing).
	got := regexp.MustCompile(`state\.db is at state version (\d+), but this store reached version (\d+)`).FindStringSubmatch(out)
	if got == nil || !strings.Contains(out, "state.db was replaced by an older copy") {
		t.Fatalf("the Coordinator's output does not name the state versions and the older copy:\n%s", out)
	}
	copyVersion, _ := strconv.ParseUint(got[1], 10, 64)
	reached, _ := strconv.ParseUint(got[2], 10, 64)
	if copyVersion >= st.StateVersion || reached < st.StateVersion {
		t.Errorf("refused state version %d, newest %d; the status before the stop said %d", copyVersion, reached, st.StateVersion)
	}
	t.Logf("refused: state version %d, newest %d", copyVersion, reached)
	for name, b := range snapshot(t, data) {
		if !bytes.Equal(before[name], b) {
			t.Errorf("%s changed when the Coordinator refused to start", name)
		}
	}

	e2etest.WriteFile(t, filepath.Join(data, "state.db"), newest["state.db"], 0o600)
	co.Start(t, nil)
	st2, err := client.New(co.Addrs.Client, v.Root).Status(t.Context())
	if err != nil || st2.State != api.StateRunning || st2.ManifestVersion != 1 || st2.StateVersion <= st.StateVersion {
		t.Errorf("status with the newest state.db back: %+v, %v; want running manifest version 1, state version above %d", st2, err, st.StateVersion)
	}
	co.Stop(t)

	// The whole directory from before the manifest: accepted, and waiting for a manifest.
	for name, b := range beforeManifest {
		e2etest.WriteFile(t, filepath.Join(data, name), b, 0o600)
	}
	co.Start(t, nil)
	st3, err := client.New(co.Addrs.Client, v.Root).Status(t.Context())
	if err != nil || st3.State != api.StateWaitingForManifest {
		t.Errorf("status after the whole directory was restored: %+v, %v; want waiting for a manifest", st3, err)
	}
	co.Stop(t)
}
