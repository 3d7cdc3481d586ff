package core

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
)

// identityWorkloads are the workloads the certificate secrets of these tests must never pass
// for: one with a DNS name and addresses, one with a wildcard, one with no names of its own.
var identityWorkloads = map[string]manifest.Workload{
	"db":  {Package: "p", TLS: manifest.TLS{DNS: []string{"db.shop.example"}, IP: []string{"10.0.0.5", "2001:db8::1"}}},
	"web": {Package: "p", TLS: manifest.TLS{DNS: []string{"*.web.example"}}},
	"api": {Package: "p"},
}

// identityManifest returns a manifest with identityWorkloads and the one secret, built without
// validation, as a manifest that slipped past it would be.
func identityManifest(name string, s manifest.Secret) *manifest.Manifest {
	return &manifest.Manifest{
		Settings:  manifest.Settings{TrustDomain: manifest.DefaultTrustDomain},
		Packages:  map[string]manifest.Package{"p": {MREnclave: strings.Repeat("ab", 32)}},
		Workloads: identityWorkloads,
		Secrets:   map[string]manifest.Secret{name: s},
	}
}

// identityCAs returns a deployment root and intermediate, as a Coordinator has them.
func identityCAs(t *testing.T) (root, inter *pki.CA) {
	t.Helper()
	now := time.Now()
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: manifest.DefaultTrustDomain, Simulation: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	inter, err = root.NewIntermediate(pki.IntermediateConfig{Version: 1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

// leafOf returns the leaf certificate of a certificate secret.
func leafOf(t *testing.T, rec *secretRecord) *x509.Certificate {
	t.Helper()
	certs, err := pki.ParseCertsPEM([]byte(rec.Cert))
	if err != nil || len(certs) == 0 {
		t.Fatalf("secret certificate: %v (%d certificates)", err, len(certs))
	}
	return certs[0]
}

// goAccepts reports whether crypto/x509 verifies leaf under the deployment root for host.
func goAccepts(leaf *x509.Certificate, root, inter *pki.CA, host string) bool {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inters})
	return err == nil
}

// opensslAccepts reports whether `openssl verify -verify_hostname` (or -verify_ip) accepts
// leaf under the deployment root for host, as curl does; ok is false without openssl.
func opensslAccepts(t *testing.T, leaf *x509.Certificate, root, inter *pki.CA, host string) (accepted, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		return false, false
	}
	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pki.EncodeCertPEM(c), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flag := "-verify_hostname"
	if _, err := netip.ParseAddr(host); err == nil {
		flag = "-verify_ip"
	}
	cmd := exec.Command(bin, "verify", "-CAfile", write("root.pem", root.Cert), "-untrusted", write("inter.pem", inter.Cert),
		flag, host, write("leaf.pem", leaf))
	out, err := cmd.CombinedOutput()
	if _, exit := errors.AsType[*exec.ExitError](err); err != nil && !exit {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	return err == nil, true
}

// TestSecretCertificatesNeverPassForWorkloads tries every way found for a certificate secret
// to carry a workload's identity. For each it checks that manifest validation refuses it; that
// the certificate the Coordinator used to issue for it (makeSecret without a manifest to check against)
// really was accepted as the workload by Go or OpenSSL where a client does so; and that, with
// validation bypassed, the issue-time check (newSecret) refuses to issue it.
func TestSecretCertificatesNeverPassForWorkloads(t *testing.T) {
	root, inter := identityCAs(t)
	for _, tc := range []struct {
		name   string
		secret string
		def    manifest.Secret
		host   string // a workload identity a client accepted the unchecked certificate for
		client string // "go", "openssl" or "" (no client at hand accepts it; refused to be safe)
	}{
		{"wildcard SAN covering a workload DNS name", "cert", manifest.Secret{DNS: []string{"*.shop.example"}}, "db.shop.example", "go"},
		{"SAN under a workload's wildcard", "cert", manifest.Secret{DNS: []string{"a.web.example"}}, "a.web.example", "go"},
		{"SAN equal to a workload name", "cert", manifest.Secret{DNS: []string{"api"}}, "api", "go"},
		{"IPv4-mapped IPv6 SAN", "cert", manifest.Secret{IP: []string{"::ffff:10.0.0.5"}}, "10.0.0.5", "go"},
		{"IPv6 SAN spelled differently", "cert", manifest.Secret{IP: []string{"2001:0db8:0::0:1"}}, "2001:db8::1", "go"},
		{"CN equal to a workload DNS name, no SAN", "cert", manifest.Secret{CommonName: "db.shop.example"}, "db.shop.example", "openssl"},
		{"CN equal to a workload name, no SAN", "cert", manifest.Secret{CommonName: "api"}, "api", "openssl"},
		{"CN under a workload's wildcard, no SAN", "cert", manifest.Secret{CommonName: "a.web.example"}, "a.web.example", "openssl"},
		{"default CN (the secret's name) equal to a workload name", "api", manifest.Secret{}, "api", "openssl"},
		{"CN in capitals with a trailing dot", "cert", manifest.Secret{CommonName: "DB.Shop.Example."}, "", ""},
		{"CN equal to a workload SPIFFE ID", "cert", manifest.Secret{CommonName: "spiffe://cloister.internal/db"}, "", ""},
		{"CN equal to a workload address", "cert", manifest.Secret{CommonName: "10.0.0.5"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := withDefaults(tc.def)

			// manifest check refuses it, at the JSON path of the name.
			if _, err := manifest.Parse(identityDoc(t, tc.secret, def)); err == nil || !strings.Contains(err.Error(), "a certificate secret must not carry a workload's identity") {
				t.Errorf("manifest.Parse = %v, want a refusal of the secret's names", err)
			}

			// Without the issue-time check, the certificate was accepted as the workload.
			unchecked, err := makeSecret(nil, tc.secret, def, root, inter, time.Now())
			if err != nil {
				t.Fatalf("makeSecret without a manifest: %v", err)
			}
			leaf := leafOf(t, unchecked)
			switch tc.client {
			case "go":
				if !goAccepts(leaf, root, inter, tc.host) {
					t.Errorf("crypto/x509 does not accept the unchecked certificate for %q; the case shows nothing", tc.host)
				}
			case "openssl":
				if accepted, ok := opensslAccepts(t, leaf, root, inter, tc.host); !ok {
					t.Log("no openssl; not showing that it accepts the unchecked certificate")
				} else if !accepted {
					t.Errorf("openssl does not accept the unchecked certificate for %q; the case shows nothing", tc.host)
				}
			}

			// With validation bypassed, the issue-time check refuses it.
			m := identityManifest(tc.secret, def)
			rec, err := newSecret(m, tc.secret, root, inter, time.Now())
			if !errors.Is(err, manifest.ErrWorkloadIdentity) {
				t.Fatalf("newSecret = %v, %v; want an error wrapping manifest.ErrWorkloadIdentity", rec, err)
			}
			// And the check of a signed certificate refuses what was issued unchecked; crypto/x509
			// alone (which ignores common names) refuses the SAN cases.
			if err := checkIssuedSecret(m, leaf); !errors.Is(err, manifest.ErrWorkloadIdentity) {
				t.Errorf("checkIssuedSecret(unchecked certificate) = %v, want ErrWorkloadIdentity", err)
			}
			if err := verifiesAsWorkload(m, leaf); (err != nil) != (tc.client == "go") {
				t.Errorf("verifiesAsWorkload(unchecked certificate) = %v; want an error exactly when crypto/x509 accepts it", err)
			}
		})
	}
}

// TestSecretCertificatesWithOtherNames checks that certificate secrets with names no workload
// has are issued, and that no workload identity verifies against them, in Go or in OpenSSL:
// each workload's name, DNS names (a wildcard with a label in place of "*") and addresses.
func TestSecretCertificatesWithOtherNames(t *testing.T) {
	root, inter := identityCAs(t)
	for name, def := range map[string]manifest.Secret{
		"partner": {DNS: []string{"api.partner.example", "*.partner.example", "shop.example", "a.b.web.example", "*.db.shop.example"},
			IP: []string{"10.0.0.6", "::ffff:10.0.0.7", "2001:db8::2"}, CommonName: "api.partner.example"},
		"signer":  {CommonName: "Shop signing key"},
		"api_tls": {},                                                                                  // default CN "api_tls", not the workload "api"
		"selfish": {SelfSigned: true, CommonName: "db.shop.example", DNS: []string{"db.shop.example"}}, // trusted by no workload
	} {
		t.Run(name, func(t *testing.T) {
			def = withDefaults(def)
			if _, err := manifest.Parse(identityDoc(t, name, def)); err != nil {
				t.Fatalf("manifest.Parse: %v", err)
			}
			rec, err := newSecret(identityManifest(name, def), name, root, inter, time.Now())
			if err != nil {
				t.Fatalf("newSecret: %v", err)
			}
			leaf := leafOf(t, rec)
			for w, wl := range identityWorkloads {
				hosts := append([]string{w}, wl.TLS.IP...)
				for _, d := range wl.TLS.DNS {
					hosts = append(hosts, strings.Replace(d, "*", "x", 1))
				}
				for _, h := range hosts {
					if (!def.SelfSigned && leaf.VerifyHostname(h) == nil) || goAccepts(leaf, root, inter, h) {
						t.Errorf("crypto/x509 accepts secret %q for %q, an identity of workload %q", name, h, w)
					}
					if accepted, _ := opensslAccepts(t, leaf, root, inter, h); accepted {
						t.Errorf("openssl accepts secret %q for %q, an identity of workload %q", name, h, w)
					}
				}
			}
		})
	}
}

func TestNewSecretUnknownName(t *testing.T) {
	root, inter := identityCAs(t)
	if _, err := newSecret(identityManifest("cert", manifest.Secret{Type: manifest.Certificate}), "nope", root, inter, time.Now()); err == nil {
		t.Fatal("newSecret of a secret the manifest does not define: no error")
	}
}

// withDefaults returns certificate secret s with the defaults a parsed manifest fills in,
// except the common name, which stays empty (meaning the secret's name) unless set.
func withDefaults(s manifest.Secret) manifest.Secret {
	s.Type, s.Algorithm, s.Validity = manifest.Certificate, manifest.DefaultKeyAlgorithm, manifest.DefaultCertificateValidity
	return s
}

// identityDoc returns the JSON manifest of identityManifest(name, s), for manifest.Parse.
func identityDoc(t *testing.T, name string, s manifest.Secret) []byte {
	t.Helper()
	m := identityManifest(name, s)
	b, err := json.Marshal(struct {
		Packages  map[string]manifest.Package  `json:"packages"`
		Workloads map[string]manifest.Workload `json:"workloads"`
		Secrets   map[string]manifest.Secret   `json:"secrets"`
	}{m.Packages, m.Workloads, m.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
