package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"net/url"
	"testing"
	"time"
)

// BenchmarkIssueLeaf measures the activation hot path: one workload
// certificate with a SPIFFE ID and a DNS name for an ECDSA P-256 key.
func BenchmarkIssueLeaf(b *testing.B) {
	_, inter := newTestChain(b, false)
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	id, err := SPIFFEID("cloister.internal", "web")
	if err != nil {
		b.Fatal(err)
	}
	cfg := LeafConfig{CommonName: "web", DNSNames: []string{"web"}, URIs: []*url.URL{id}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inter.IssueLeaf(key.Public(), cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDSAP256Sign is the floor BenchmarkIssueLeaf is compared with:
// one ECDSA P-256 signature over a SHA-256 digest.
func BenchmarkECDSAP256Sign(b *testing.B) {
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("tbs certificate"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCSR measures parsing and checking a P-256 CSR, which every
// activation does once.
func BenchmarkParseCSR(b *testing.B) {
	key, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	der := makeCSR(b, key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCSR(der); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateCertificate is the crypto/x509 path IssueLeaf replaces,
// for comparison: same certificate, plus CreateCertificate's reflection
// encoding and its verification of its own signature.
func BenchmarkCreateCertificate(b *testing.B) {
	_, inter := newTestChain(b, false)
	key := testKey(b, KeyECDSAP256)
	id, err := SPIFFEID("cloister.internal", "web")
	if err != nil {
		b.Fatal(err)
	}
	cfg := LeafConfig{CommonName: "web", DNSNames: []string{"web"}, URIs: []*url.URL{id}}
	serial := newSerial().Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdlibTBS(b, inter, key.Public(), cfg, serial, testNow, testNow.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssueLeafAllocs keeps the hot path from growing: about 200
// allocations today, most in ECDSA signing and certificate parsing.
func TestIssueLeafAllocs(t *testing.T) {
	_, inter := newTestChain(t, false)
	key := testKey(t, KeyECDSAP256)
	id, _ := SPIFFEID("cloister.internal", "web")
	cfg := LeafConfig{CommonName: "web", DNSNames: []string{"web"}, URIs: []*url.URL{id}}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := inter.IssueLeaf(key.Public(), cfg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 230 {
		t.Fatalf("IssueLeaf makes %.0f allocations, want at most 230", allocs)
	}
}
