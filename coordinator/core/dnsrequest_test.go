package core

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
)

// newDNSRequest is newRequest with DNS names requested in the CSR, as the launcher makes it
// from CLOISTER_DNS_NAMES.
func newDNSRequest(t *testing.T, workload, instance string, names ...string) *request {
	t.Helper()
	k, err := attested.NewWorkloadKeyDNS(workload, names)
	if err != nil {
		t.Fatal(err)
	}
	r := &request{key: k.Key, spki: k.SPKI, req: &api.ActivationRequest{Workload: workload, Instance: instance, CSR: k.CSR}}
	rand.Read(r.exporter[:])
	r.req.Quote = quote(t, goodBody(), attest.ActivationReportData(k.SPKI, r.exporter))
	return r
}

func TestRequestedDNSNames(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		ws := m["workloads"].(map[string]any)
		web := ws["web"].(map[string]any)
		web["tls"] = map[string]any{"dns": []string{"web.test"}, "allowed_dns": []string{"*.apps.svc.cluster.local", "web.apps"}}
		ws["db"] = map[string]any{"package": web["package"], "tls": map[string]any{"dns": []string{"db.test"}}}
	}))
	issued := func(names ...string) []string {
		t.Helper()
		resp, err := f.activate(newDNSRequest(t, "web", "i1", names...))
		if err != nil {
			t.Fatalf("activate requesting %q: %v", names, err)
		}
		chain, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
		if err != nil {
			t.Fatal(err)
		}
		return chain[0].DNSNames
	}
	// Allowed: exact names and one label under a wildcard; tls.dns is issued anyway, once.
	if got, want := issued("web.apps.svc.cluster.local", "web.apps", "web.test", "web.apps"), []string{"web.test", "web.apps.svc.cluster.local", "web.apps"}; !slices.Equal(got, want) {
		t.Errorf("issued %q, want %q", got, want)
	}
	if got := issued(); !slices.Equal(got, []string{"web.test"}) {
		t.Errorf("without requested names: issued %q, want only tls.dns", got)
	}
	before := f.c.ActivationCounts()["web"]
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"web.apps.svc.cluster.local", "evil.example"}, `"evil.example" is not among workload "web"'s tls.dns or tls.allowed_dns`},
		{[]string{"a.b.apps.svc.cluster.local"}, `is not among`},
		{[]string{"db.test"}, `"db.test" is not among`},                   // another workload's name
		{[]string{"10.0.0.9"}, `which clients may read as an IP address`}, // even if a pattern covered it
		{[]string{"WEB.apps"}, `expected a lowercase DNS name`},
	} {
		_, err := f.activate(newDNSRequest(t, "web", "refused", tc.names...))
		e, ok := errors.AsType[*Error](err)
		if !ok || e.Code != api.CodePolicy || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, manifest.ErrDNSNotAllowed) {
			t.Errorf("requesting %q: %v; want POLICY_REJECTED containing %q", tc.names, err, tc.want)
		}
	}
	if after := f.c.ActivationCounts()["web"]; after != before {
		t.Errorf("refused activations were counted: %d, then %d", before, after)
	}
	// Too many names, and names that are not DNS names, are bad requests.
	many := make([]string, manifest.MaxRequestedDNS+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1) + ".apps.svc.cluster.local"
	}
	if _, err := f.activate(newDNSRequest(t, "web", "refused", many...)); err == nil || !strings.Contains(err.Error(), "at most 32 allowed") {
		t.Errorf("requesting %d names: %v", len(many), err)
	}
}

// TestRequestedDNSOverlap: a requested name the workload's pattern covers but that is another
// workload's identity is refused, whatever the manifest's history (here a manifest built
// without validation: Validate refuses the pattern itself).
func TestRequestedDNSOverlap(t *testing.T) {
	m := &manifest.Manifest{Workloads: map[string]manifest.Workload{
		"web": {TLS: manifest.TLS{AllowedDNS: []string{"*.apps.svc"}}},
		"db":  {TLS: manifest.TLS{DNS: []string{"db.apps.svc"}}},
		"api": {TLS: manifest.TLS{DNS: []string{"*.x.apps.svc"}}},
	}, Secrets: map[string]manifest.Secret{
		"admin": {Type: manifest.Certificate, DNS: []string{"admin.apps.svc"}},
	}}
	k, err := attested.NewWorkloadKeyDNS("web", []string{"db.apps.svc"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = requestedDNS(m, "web", parseCSR(t, k.CSR))
	if !errors.Is(err, manifest.ErrWorkloadIdentity) || !strings.Contains(err.Error(), `"db.apps.svc" matches the DNS name "db.apps.svc" of workload "db"`) {
		t.Errorf("another workload's name: %v", err)
	}
	k, _ = attested.NewWorkloadKeyDNS("web", []string{"admin.apps.svc"})
	if _, err = requestedDNS(m, "web", parseCSR(t, k.CSR)); err == nil || !strings.Contains(err.Error(), `overlaps "admin.apps.svc" of certificate secret "admin"`) {
		t.Errorf("a certificate secret's name: %v", err)
	}
	k, _ = attested.NewWorkloadKeyDNS("web", []string{"ok.apps.svc"})
	if names, err := requestedDNS(m, "web", parseCSR(t, k.CSR)); err != nil || !slices.Equal(names, []string{"ok.apps.svc"}) {
		t.Errorf("an allowed name: %q, %v", names, err)
	}
}

// TestActivationStateVersion: the answer carries the state version after the activation, as
// the status reports it.
func TestActivationStateVersion(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	resp := f.mustActivate("web", "i1")
	st := f.c.Status()
	if resp.StateVersion == 0 || resp.StateVersion != st.StateVersion || resp.StateHash != st.StateHash {
		t.Errorf("activation state version %d %s, status %d %s; want equal and non-zero", resp.StateVersion, resp.StateHash, st.StateVersion, st.StateHash)
	}
}

func parseCSR(t *testing.T, der []byte) *x509.CertificateRequest {
	t.Helper()
	csr, err := pki.ParseCSRUnsigned(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}
