package controlplane

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestLauncherRefusesOlderStateRenewal: a running launcher renews its workload certificate
// from a Coordinator whose whole data directory was meanwhile restored from an older copy
// (which the Coordinator accepts). The launcher refuses the renewal (the state version went
// backwards, or forked at the same version), installs nothing from it, and keeps the
// application running on its current certificate.
func TestLauncherRefusesOlderStateRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	data := e.Path("data")
	co := e.StartCoordinator(t, "coordinator", p, data, nil)
	a := e.newApp(t, "svc", signer, nil)
	signerID := enclave.MRSigner(&signer.PublicKey)
	cert := filepath.Join(a.filesDir, "cert.pem")
	m := map[string]any{
		"settings": map[string]any{"workload_certificate_validity": "6s"},
		"packages": map[string]any{"p": map[string]any{"mrsigner": hex.EncodeToString(signerID[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{"svc": map[string]any{
			"package": "p", "max_activations": 100, // every activation commits: the state advances
			"files": map[string]string{cert: "{{.Workload.Cert}}"},
			"argv":  []string{"/bin/sh", "-c", "trap 'exit 0' INT TERM; echo app-started; while :; do sleep 0.2; done"},
		}},
	}
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(co.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	at := co.Addrs
	co.Stop(t)
	old := snapshot(t, data)
	co.Start(t, &at)

	lp := e.startLaunch(t, a, launchOpts{instance: "svc-1", mesh: at.Mesh, simDir: p.Dir()})
	e2etest.WaitFor(t, 10*time.Second, "the application to start", func() (bool, string) {
		return strings.Contains(lp.Output(), "app-started"), lp.Output()
	})
	first := parseCert(t, "cert.pem", string(readAll(t, cert)))
	co.Stop(t)
	for name, b := range old {
		e2etest.WriteFile(t, filepath.Join(data, name), b, 0o600)
	}
	co.Start(t, &at)

	e2etest.WaitFor(t, 15*time.Second, "the launcher to refuse the renewal", func() (bool, string) {
		return strings.Contains(lp.Output(), "COORDINATOR STATE WENT BACKWARDS"), lp.Output()
	})
	out := lp.Output()
	if !strings.Contains(out, "coordinator state went backwards: state version") && !strings.Contains(out, "coordinator state forked: state version") {
		t.Errorf("the launcher did not say which state versions it saw:\n%s", out)
	}
	if strings.Contains(out, "workload certificate renewed") {
		t.Errorf("the launcher renewed from the older state:\n%s", out)
	}
	if got := parseCert(t, "cert.pem", string(readAll(t, cert))); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("cert.pem changed (serial %x, was %x): something from the older state was installed", got.SerialNumber, first.SerialNumber)
	}
	if lp.Exited() {
		t.Errorf("the launcher (and the application) exited: %v\n%s", lp.Err(), out)
	}
	lp.Interrupt(t)
	co.Stop(t)
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
