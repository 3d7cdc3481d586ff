package controlplane

import (
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestRequestedDNSNames: the real launcher requests the names in CLOISTER_DNS_NAMES (as the
// injector sets them) from a real Coordinator; the names the manifest's tls.allowed_dns
// allows are in the certificate the application gets, beside tls.dns; a name it does not
// allow refuses the activation with the reason, and the application never runs.
func TestRequestedDNSNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	co := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)
	a := e.newApp(t, "web", signer, nil)
	signerID := enclave.MRSigner(&signer.PublicKey)
	m := map[string]any{
		"packages": map[string]any{"p": map[string]any{"mrsigner": hex.EncodeToString(signerID[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{
			"web": map[string]any{
				"package": "p",
				"tls":     map[string]any{"dns": []string{"web"}, "allowed_dns": []string{"*.apps.svc.cluster.local"}},
				"env":     map[string]string{"INSTANCE": "{{.Workload.Instance}}"},
				"files":   map[string]string{filepath.Join(a.filesDir, "cert.pem"): "{{.Workload.Cert}}"},
			},
			"db": map[string]any{"package": "p", "tls": map[string]any{"dns": []string{"db.other.svc.cluster.local"}}},
		},
	}
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(co.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	o := launchOpts{instance: "web-1", mesh: co.Addrs.Mesh, simDir: p.Dir(),
		env: []string{"CLOISTER_DNS_NAMES=web.apps.svc.cluster.local, web"}}
	s := e.mustLaunch(t, a, o)
	cert := parseCert(t, "the application's cert.pem", string(s.files["cert.pem"]))
	if want := []string{"web", "web.apps.svc.cluster.local"}; !slices.Equal(cert.DNSNames, want) {
		t.Errorf("workload certificate DNS names %q, want %q", cert.DNSNames, want)
	}

	for _, tc := range []struct{ names, want string }{
		{"web.other.svc.cluster.local", `"web.other.svc.cluster.local" is not among workload "web"'s tls.dns or tls.allowed_dns`},
		{"db.other.svc.cluster.local", `"db.other.svc.cluster.local" is not among workload "web"'s tls.dns or tls.allowed_dns`},
		{"a.b.apps.svc.cluster.local", `"a.b.apps.svc.cluster.local" is not among`},
	} {
		o := launchOpts{instance: "refused", mesh: co.Addrs.Mesh, simDir: p.Dir(), env: []string{"CLOISTER_DNS_NAMES=" + tc.names}}
		e.launchFails(t, a, o, "DNS name not allowed for the workload certificate", tc.want)
	}
	// A malformed value is refused by the launcher before it attests.
	o = launchOpts{instance: "malformed", mesh: co.Addrs.Mesh, simDir: p.Dir(), env: []string{"CLOISTER_DNS_NAMES=*.apps.svc.cluster.local"}}
	lp := e.startLaunch(t, a, o)
	if code := lp.Wait(t, e2etest.RunTimeout); code == 0 || !strings.Contains(lp.Output(), "CLOISTER_DNS_NAMES: name 1: expected a lowercase DNS name without wildcard") || a.ran("malformed") {
		t.Errorf("%s: exit code %d, want a refusal of CLOISTER_DNS_NAMES before the application runs:\n%s", lp.Name, code, lp.Output())
	}
	co.Stop(t)
}
