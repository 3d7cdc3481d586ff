package manifest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"
)

// pemPair makes a real P-256 certificate and PKCS #8 key, so benchmark inputs have
// realistic sizes.
func pemPair(tb testing.TB, cn string) (cert, key, pub []byte) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
}

func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/valid/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkRender renders the "frontend" workload of testdata/valid/full.json: four
// environment values (one static), four files including a JSON config with a secret, and
// five arguments, with real certificate and key PEM.
func BenchmarkRender(b *testing.B) {
	m := mustParse(b, readExample(b, "full.json"))
	leaf, key, _ := pemPair(b, "frontend")
	inter, _, _ := pemPair(b, "intermediate")
	root, _, _ := pemPair(b, "root")
	in := RenderInput{
		Secrets: map[string]SecretValue{
			"session_key": {Bytes: make([]byte, 32)},
			"api_token":   {Bytes: []byte("tok_4f9c2e7a1b3d5f60")},
		},
		Instance:        "6f1c1f0e-0d5e-4c43-9a51-0d8b2c1e7f3a",
		CertPEM:         string(leaf),
		KeyPEM:          string(key),
		ChainPEM:        string(leaf) + string(inter),
		RootPEM:         string(root),
		IntermediatePEM: string(inter),
	}
	if _, err := m.Render("frontend", in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Render("frontend", in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse parses and validates testdata/valid/full.json.
func BenchmarkParse(b *testing.B) {
	doc := readExample(b, "full.json")
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
