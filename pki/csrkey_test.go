package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
)

func TestCSRKey(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "w"}, DNSNames: []string{"a"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	pub, spki, err := CSRKey(der)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if !bytes.Equal(spki, want) || !key.PublicKey.Equal(pub) {
		t.Fatal("CSRKey returned another key")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	bad, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p384)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"huge", make([]byte, MaxCSRSize+1), "at most"},
		{"trailing", append(bytes.Clone(der), 0), "parsing CSR"},
		{"truncated", der[:len(der)-5], "parsing CSR"},
		{"certificate", mustCert(t), "parsing CSR"},
		{"curve", bad, "found ECDSA on curve P-224"},
	} {
		if _, _, err := CSRKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func mustCert(t *testing.T) []byte {
	root, err := NewRoot(RootConfig{TrustDomain: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return root.Cert.Raw
}

func FuzzCSRKey(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "w"}}, key)
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, spki, err := CSRKey(b)
		if err != nil {
			return
		}
		if got, err := x509.ParsePKIXPublicKey(spki); err != nil || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(got) {
			t.Fatalf("key and SPKI disagree")
		}
		// Everything CSRKey accepts, the standard parser parses too.
		if _, err := x509.ParseCertificateRequest(b); err != nil {
			t.Fatalf("CSRKey accepted what x509 rejects: %v", err)
		}
	})
}
