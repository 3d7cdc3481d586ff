package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// pemCases are the ParseCertsPEM table cases; FuzzParseCertsPEM seeds from them.
func pemCases(t testing.TB) []struct {
	name      string
	in        []byte
	wantCount int
	wantErr   string
} {
	t.Helper()
	root, inter := newTestChain(t, true)
	one := EncodeCertPEM(root.Cert)
	two := EncodeCertPEM(inter.Cert, root.Cert)
	withHeaders := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: root.Cert.Raw})
	badDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	keyPEM, _ := EncodeKeyPEM(root.Key)
	return []struct {
		name      string
		in        []byte
		wantCount int
		wantErr   string
	}{
		{"one", one, 1, ""},
		{"chain", two, 2, ""},
		{"surrounding whitespace", append(append([]byte("\n \t\r\n"), two...), "\n\n"...), 2, ""},
		{"empty", nil, 0, `no PEM "CERTIFICATE" block found`},
		{"only whitespace", []byte(" \n"), 0, "no PEM"},
		{"too large", make([]byte, MaxCertsPEMSize+1), 0, "at most 1048576 allowed"},
		{"text before", append([]byte("subject=foo\n"), one...), 0, "at byte 0, found other data"},
		{"text between", bytes.Join([][]byte{one, one}, []byte("junk\n")), 0, "found other data"},
		{"text after", append(bytes.Clone(one), "trailer"...), 0, "found other data"},
		{"private key", keyPEM, 0, `is "PRIVATE KEY", expected "CERTIFICATE"`},
		{"headers", withHeaders, 0, "has headers"},
		{"bad DER", badDER, 0, "certificate 1:"},
		{"unterminated", one[:len(one)-30], 0, "malformed PEM block at byte 0"},
		{"malformed then valid", append([]byte("-----BEGIN CERTIFICATE-----\n!!!\n"), one...), 0, "malformed PEM block at byte 0"},
	}
}

func TestParseCertsPEM(t *testing.T) {
	for _, tc := range pemCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertsPEM(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseCertsPEM error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCertsPEM: %v", err)
			}
			if len(certs) != tc.wantCount {
				t.Fatalf("ParseCertsPEM returned %d certificates, want %d", len(certs), tc.wantCount)
			}
		})
	}
}

// FuzzParseCertsPEM: no panic; anything accepted re-encodes and re-parses
// to the same certificates.
func FuzzParseCertsPEM(f *testing.F) {
	for _, tc := range pemCases(f) {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		certs, err := ParseCertsPEM(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("ParseCertsPEM accepted input without certificates")
		}
		again, err := ParseCertsPEM(EncodeCertPEM(certs...))
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-parsing the re-encoded certificates: %d certificates, %v", len(again), err)
		}
		for i := range certs {
			if !again[i].Equal(certs[i]) {
				t.Fatalf("certificate %d changed in the round trip", i)
			}
		}
	})
}

func TestKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range keyAlgorithms {
		t.Run(alg, func(t *testing.T) {
			key := testKey(t, alg)
			b, err := EncodeKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseKeyPEM(b)
			if err != nil {
				t.Fatalf("ParseKeyPEM: %v", err)
			}
			if !back.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
				t.Fatal("private key changed in the round trip")
			}
			pubPEM, err := EncodePublicKeyPEM(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			block, rest := pem.Decode(pubPEM)
			if block == nil || block.Type != "PUBLIC KEY" || len(rest) != 0 {
				t.Fatalf("EncodePublicKeyPEM produced %q", pubPEM)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("public key changed in the round trip: %v", err)
			}
		})
	}
}

func TestParseKeyPEMErrors(t *testing.T) {
	key, _ := GenerateKey(KeyECDSAP256)
	good, _ := EncodeKeyPEM(key)
	der, _ := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	garbage := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("SECRETSECRET")})
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "no PEM"},
		{"two keys", append(bytes.Clone(good), good...), "found 2 private keys"},
		{"SEC 1", sec1, `is "EC PRIVATE KEY", expected "PRIVATE KEY"`},
		{"not PKCS 8", garbage, "parsing PKCS #8"},
		{"too large", make([]byte, MaxKeyPEMSize+1), "at most 65536 allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyPEM(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseKeyPEM error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error %q contains key bytes", err)
			}
		})
	}
}

func TestMarshalParseCA(t *testing.T) {
	root, inter := newTestChain(t, true)
	certPEM, keyPEM, err := inter.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if !back.Cert.Equal(inter.Cert) || !IsSimulation(back.Cert) {
		t.Fatal("certificate changed in the round trip")
	}
	// The parsed CA must still issue leaves that verify.
	leafKey, _ := GenerateKey(KeyECDSAP256)
	leaf, err := back.IssueLeaf(leafKey.Public(), LeafConfig{CommonName: "web", DNSNames: []string{"web"}, NotBefore: testNow})
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, root, back, leaf, "web")

	rootCertPEM, rootKeyPEM, _ := root.Marshal()
	leafCertPEM := EncodeCertPEM(leaf)
	leafKeyPEM, _ := EncodeKeyPEM(leafKey)
	p384, _ := GenerateKey(KeyECDSAP384)
	p384PEM, _ := EncodeKeyPEM(p384)
	tests := []struct {
		name            string
		certPEM, keyPEM []byte
		wantErr         string
	}{
		{"key of another CA", certPEM, rootKeyPEM, "does not match"},
		{"CA key not P-256", certPEM, p384PEM, "expected ECDSA P-256"},
		{"not a CA", leafCertPEM, leafKeyPEM, "is not a CA"},
		{"two certificates", append(bytes.Clone(certPEM), rootCertPEM...), keyPEM, "holds 2 certificates"},
		{"no key", certPEM, nil, "no PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCA(tc.certPEM, tc.keyPEM)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseCA error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzParseKeyPEM: no panic, no key bytes in errors; an accepted key
// re-encodes and re-parses to an equal key.
func FuzzParseKeyPEM(f *testing.F) {
	for _, alg := range []string{KeyECDSAP256, KeyRSA2048, KeyEd25519} {
		b, err := EncodeKeyPEM(testKey(f, alg))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		key, err := ParseKeyPEM(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		b, err := EncodeKeyPEM(key)
		if err != nil {
			t.Fatalf("EncodeKeyPEM of an accepted key: %v", err)
		}
		back, err := ParseKeyPEM(b)
		if err != nil || !back.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
			t.Fatalf("accepted key does not round trip: %v", err)
		}
	})
}
