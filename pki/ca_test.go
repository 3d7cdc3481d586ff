package pki

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is a fixed issuance time so that validity arithmetic is exact.
var testNow = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

// testKeys caches one key per algorithm: RSA-4096 generation takes
// seconds, and most tests only need some key of each kind.
var testKeys sync.Map // algorithm name → crypto.Signer

// testKey returns the cached key for alg, made by GenerateKey.
func testKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	if k, ok := testKeys.Load(alg); ok {
		return k.(crypto.Signer)
	}
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatalf("GenerateKey(%q): %v", alg, err)
	}
	k2, _ := testKeys.LoadOrStore(alg, k)
	return k2.(crypto.Signer)
}

// newTestChain returns a root and an intermediate (version 3) issued at testNow.
func newTestChain(t testing.TB, simulation bool) (root, inter *CA) {
	t.Helper()
	root, err := NewRoot(RootConfig{TrustDomain: "cloister.internal", Simulation: simulation, Now: testNow})
	if err != nil {
		t.Fatalf("NewRoot: %v", err)
	}
	inter, err = root.NewIntermediate(IntermediateConfig{Version: 3, Now: testNow})
	if err != nil {
		t.Fatalf("NewIntermediate: %v", err)
	}
	return root, inter
}

func TestChainVerifies(t *testing.T) {
	for _, simulation := range []bool{false, true} {
		root, inter := newTestChain(t, simulation)
		checkCA(t, root.Cert, RootCommonName, 1, simulation)
		checkCA(t, inter.Cert, "Cloister Intermediate CA v3", 0, simulation)

		for _, alg := range keyAlgorithms {
			name := alg
			if simulation {
				name += "/simulation"
			}
			t.Run(name, func(t *testing.T) {
				key := testKey(t, alg)
				id, err := SPIFFEID("cloister.internal", "workload/web")
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := inter.IssueLeaf(key.Public(), LeafConfig{
					CommonName:  "web",
					DNSNames:    []string{"web", "web.default.svc"},
					IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
					URIs:        []*url.URL{id},
					NotBefore:   testNow,
				})
				if err != nil {
					t.Fatalf("IssueLeaf: %v", err)
				}
				verifyLeaf(t, root, inter, leaf, "web.default.svc")
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(root.Cert), Intermediates: pool(inter.Cert), CurrentTime: testNow, DNSName: "127.0.0.1"}); err != nil {
					t.Errorf("Verify for IP 127.0.0.1: %v", err)
				}
				if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cloister.internal/workload/web" {
					t.Errorf("leaf URIs = %v, want [spiffe://cloister.internal/workload/web]", leaf.URIs)
				}
				if IsSimulation(leaf) != simulation {
					t.Errorf("IsSimulation(leaf) = %v, want %v", IsSimulation(leaf), simulation)
				}
				_, isRSA := key.Public().(*rsa.PublicKey)
				if got := leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0; got != isRSA {
					t.Errorf("key encipherment = %v, want %v for %s", got, isRSA, alg)
				}
				if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 || leaf.IsCA {
					t.Errorf("leaf key usage %b, IsCA %v; want digital signature and not a CA", leaf.KeyUsage, leaf.IsCA)
				}
				if !slices.Equal(leaf.Subject.Organization, []string{"cloister.internal"}) || leaf.Subject.CommonName != "web" {
					t.Errorf("leaf subject = %v, want CN=web,O=cloister.internal", leaf.Subject)
				}
				if want := testNow.Add(-Backdate); !leaf.NotBefore.Equal(want) {
					t.Errorf("leaf NotBefore = %v, want %v", leaf.NotBefore, want)
				}
				if want := testNow.Add(DefaultLeafValidity); !leaf.NotAfter.Equal(want) {
					t.Errorf("leaf NotAfter = %v, want %v", leaf.NotAfter, want)
				}
			})
		}
	}
}

func checkCA(t *testing.T, c *x509.Certificate, cn string, pathLen int, simulation bool) {
	t.Helper()
	if c.Subject.CommonName != cn || !slices.Equal(c.Subject.Organization, []string{"cloister.internal"}) {
		t.Errorf("subject = %v, want CN=%s,O=cloister.internal", c.Subject, cn)
	}
	if !c.IsCA || c.MaxPathLen != pathLen || (pathLen == 0) != c.MaxPathLenZero {
		t.Errorf("%s: IsCA %v MaxPathLen %d (zero %v), want CA with path length %d", cn, c.IsCA, c.MaxPathLen, c.MaxPathLenZero, pathLen)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Errorf("%s has no subject key identifier", cn)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("%s key is %T, want ECDSA P-256", cn, c.PublicKey)
	}
	if n := c.SerialNumber.BitLen(); n == 0 || n > 128 {
		t.Errorf("%s serial has %d bits, want 1..128", cn, n)
	}
	if IsSimulation(c) != simulation {
		t.Errorf("IsSimulation(%s) = %v, want %v", cn, IsSimulation(c), simulation)
	}
}

func verifyLeaf(t *testing.T, root, inter *CA, leaf *x509.Certificate, dnsName string) {
	t.Helper()
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         pool(root.Cert),
			Intermediates: pool(inter.Cert),
			CurrentTime:   testNow,
			DNSName:       dnsName,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			t.Fatalf("Verify(usage %v): %v", usage, err)
		}
		if len(chains) != 1 || len(chains[0]) != 3 {
			t.Fatalf("Verify returned chains %v, want one chain leaf → intermediate → root", chains)
		}
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestSerialsDiffer(t *testing.T) {
	_, inter := newTestChain(t, false)
	key, _ := GenerateKey(KeyECDSAP256)
	seen := map[string]bool{}
	for range 64 {
		leaf, err := inter.IssueLeaf(key.Public(), LeafConfig{CommonName: "x"})
		if err != nil {
			t.Fatal(err)
		}
		s := leaf.SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

func TestValidityWindows(t *testing.T) {
	root, inter := newTestChain(t, false)
	key, _ := GenerateKey(KeyECDSAP256)
	day := 24 * time.Hour
	tests := []struct {
		name          string
		issue         func() (*x509.Certificate, error)
		wantNotBefore time.Time
		wantNotAfter  time.Time
		wantErr       string
	}{
		{
			name:          "root default",
			issue:         func() (*x509.Certificate, error) { return root.Cert, nil },
			wantNotBefore: testNow.Add(-Backdate),
			wantNotAfter:  testNow.Add(DefaultRootValidity),
		},
		{
			name:          "intermediate default",
			issue:         func() (*x509.Certificate, error) { return inter.Cert, nil },
			wantNotBefore: testNow.Add(-Backdate),
			wantNotAfter:  testNow.Add(DefaultIntermediateValidity),
		},
		{
			name: "intermediate capped at root",
			issue: func() (*x509.Certificate, error) {
				ca, err := root.NewIntermediate(IntermediateConfig{Version: 1, Validity: 20 * 365 * day, Now: testNow})
				if err != nil {
					return nil, err
				}
				return ca.Cert, nil
			},
			wantNotBefore: testNow.Add(-Backdate),
			wantNotAfter:  root.Cert.NotAfter,
		},
		{
			name: "leaf capped at intermediate",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{NotBefore: testNow.Add(360 * day), Validity: 30 * day})
			},
			wantNotBefore: testNow.Add(360*day - Backdate),
			wantNotAfter:  inter.Cert.NotAfter,
		},
		{
			name: "leaf start before issuer is clamped",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{NotBefore: testNow.Add(-day), Validity: 2 * day})
			},
			wantNotBefore: inter.Cert.NotBefore,
			wantNotAfter:  testNow.Add(day),
		},
		{
			name: "leaf custom validity",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{NotBefore: testNow, Validity: time.Hour})
			},
			wantNotBefore: testNow.Add(-Backdate),
			wantNotAfter:  testNow.Add(time.Hour),
		},
		{
			name: "leaf after issuer expiry",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{NotBefore: inter.Cert.NotAfter})
			},
			wantErr: "is not within issuer",
		},
		{
			name: "leaf entirely before issuer",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{NotBefore: testNow.Add(-30 * day), Validity: day})
			},
			wantErr: "is not within issuer",
		},
		{
			name: "negative validity",
			issue: func() (*x509.Certificate, error) {
				return inter.IssueLeaf(key.Public(), LeafConfig{Validity: -time.Hour})
			},
			wantErr: "expected a positive duration",
		},
		{
			name: "negative root validity",
			issue: func() (*x509.Certificate, error) {
				ca, err := NewRoot(RootConfig{TrustDomain: "a", Validity: -1})
				if err != nil {
					return nil, err
				}
				return ca.Cert, nil
			},
			wantErr: "expected a positive duration",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.issue()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.NotBefore.Equal(tc.wantNotBefore) || !c.NotAfter.Equal(tc.wantNotAfter) {
				t.Fatalf("validity = [%v, %v], want [%v, %v]", c.NotBefore, c.NotAfter, tc.wantNotBefore, tc.wantNotAfter)
			}
		})
	}
}

func TestCAErrors(t *testing.T) {
	root, inter := newTestChain(t, false)
	tests := []struct {
		name    string
		do      func() error
		wantErr string
	}{
		{"root without trust domain", func() error { _, err := NewRoot(RootConfig{}); return err }, "trust domain is 0 bytes"},
		{"root with bad trust domain", func() error { _, err := NewRoot(RootConfig{TrustDomain: "Example.org"}); return err }, `has 'E' at byte 0`},
		{"intermediate version 0", func() error { _, err := root.NewIntermediate(IntermediateConfig{}); return err }, "version is 0, expected at least 1"},
		{"intermediate version -1", func() error { _, err := root.NewIntermediate(IntermediateConfig{Version: -1}); return err }, "version is -1"},
		{"intermediate under intermediate", func() error {
			_, err := inter.NewIntermediate(IntermediateConfig{Version: 1})
			return err
		}, "may not sign CA certificates"},
		{"leaf common name too long", func() error {
			key, _ := GenerateKey(KeyEd25519)
			_, err := inter.IssueLeaf(key.Public(), LeafConfig{CommonName: strings.Repeat("a", 65)})
			return err
		}, "65 bytes, at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestIssueLeafRejectsKeys(t *testing.T) {
	_, inter := newTestChain(t, false)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		wantErr string
	}{
		{"P-224", p224.Public(), "found ECDSA on curve P-224"},
		{"P-521", p521.Public(), "found ECDSA on curve P-521"},
		{"RSA-1024", rsa1024.Public(), "found RSA of 1024 bits"},
		{"X25519", x25519.PublicKey(), "found key type *ecdh.PublicKey"},
		{"nil", nil, "found no key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inter.IssueLeaf(tc.pub, LeafConfig{CommonName: "x"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("IssueLeaf error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestLeafCA(t *testing.T) {
	root, _ := newTestChain(t, false)
	key, _ := GenerateKey(KeyECDSAP384)
	leaf, err := root.IssueLeaf(key.Public(), LeafConfig{CommonName: "secret CA", IsCA: true, NotBefore: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.IsCA || !leaf.MaxPathLenZero || leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("IsCA %v MaxPathLenZero %v usage %b, want a CA with path length 0 that may sign", leaf.IsCA, leaf.MaxPathLenZero, leaf.KeyUsage)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(root.Cert), CurrentTime: testNow}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		alg  string
		want func(crypto.PublicKey) bool
	}{
		{KeyECDSAP256, func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() }},
		{KeyECDSAP384, func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P384() }},
		{KeyRSA2048, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 }},
		{KeyRSA3072, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 3072 }},
		{KeyRSA4096, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 4096 }},
		{KeyEd25519, func(p crypto.PublicKey) bool { _, ok := p.(ed25519.PublicKey); return ok }},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			key := testKey(t, tc.alg) // made by GenerateKey
			if !tc.want(key.Public()) {
				t.Fatalf("GenerateKey(%q) made a %T", tc.alg, key.Public())
			}
		})
	}
	for _, bad := range []string{"", "ecdsa-p521", "RSA-2048", "rsa-1024"} {
		_, err := GenerateKey(bad)
		if err == nil || !strings.Contains(err.Error(), strings.Join(keyAlgorithms, ", ")) {
			t.Errorf("GenerateKey(%q) error = %v, want one listing the valid names", bad, err)
		}
	}
}
