package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
)

// makeCSR returns a DER CSR signed by key.
func makeCSR(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "workload"},
	}, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// csrCases are the ParseCSR table cases; FuzzParseCSR seeds from them.
func csrCases(t testing.TB) []struct {
	name    string
	der     []byte
	wantErr string
} {
	t.Helper()
	var valid [][]byte
	for _, alg := range []string{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyEd25519} {
		valid = append(valid, makeCSR(t, testKey(t, alg)))
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	badSig := bytes.Clone(valid[0])
	badSig[len(badSig)-1] ^= 0x01
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: valid[0]})

	return []struct {
		name    string
		der     []byte
		wantErr string
	}{
		{"ECDSA P-256", valid[0], ""},
		{"ECDSA P-384", valid[1], ""},
		{"RSA-2048", valid[2], ""},
		{"Ed25519", valid[3], ""},
		{"empty", nil, "CSR is empty"},
		{"too large", make([]byte, MaxCSRSize+1), "16385 bytes, at most 16384"},
		{"garbage", []byte("not a csr at all"), "parsing CSR"},
		{"PEM instead of DER", pemCSR, "parsing CSR (DER expected)"},
		{"truncated", valid[0][:len(valid[0])-10], "parsing CSR"},
		{"trailing data", append(bytes.Clone(valid[0]), 0), "parsing CSR"},
		{"P-521 key", makeCSR(t, p521), "found ECDSA on curve P-521"},
		{"RSA-1024 key", makeCSR(t, rsa1024), "found RSA of 1024 bits"},
		{"bad signature", badSig, "signature does not verify"},
	}
}

func TestParseCSR(t *testing.T) {
	for _, tc := range csrCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.der)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseCSR error = %v, want it to contain %q", err, tc.wantErr)
				}
				if csr != nil {
					t.Fatal("ParseCSR returned a CSR with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if csr.Subject.CommonName != "workload" {
				t.Fatalf("CSR subject = %v, want CN=workload", csr.Subject)
			}
		})
	}
}

// FuzzParseCSR: no panic; an accepted CSR is exactly the input, has an
// allowed key and a valid self-signature.
func FuzzParseCSR(f *testing.F) {
	for _, tc := range csrCases(f) {
		f.Add(tc.der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			if csr != nil {
				t.Fatal("ParseCSR returned a CSR with an error")
			}
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		if !bytes.Equal(csr.Raw, der) {
			t.Fatal("accepted CSR is not exactly the input")
		}
		if err := checkPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("accepted CSR with key: %v", err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted CSR with a bad signature: %v", err)
		}
	})
}
