package enclave

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	if testing.Short() {
		t.Skip("generating an RSA-3072 key takes about a second")
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	one, three := big.NewInt(1), big.NewInt(3)
	if key.N.BitLen() != 3072 || key.E != 3 || len(key.Primes) != 2 {
		t.Fatalf("GenerateKey: %d bits, e = %d, %d primes; want 3072, 3, 2", key.N.BitLen(), key.E, len(key.Primes))
	}
	for _, p := range key.Primes {
		if new(big.Int).Mod(new(big.Int).Sub(p, one), three).Sign() == 0 {
			t.Errorf("p-1 is divisible by 3")
		}
	}
	digest := sha256.Sum256([]byte("message"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature of a generated key does not verify: %v", err)
	}
	back, err := ParseKey(MarshalKey(key))
	if err != nil || !back.Equal(key) {
		t.Errorf("ParseKey(MarshalKey(key)) = %v; want the key back", err)
	}
}

func TestMRSigner(t *testing.T) {
	// n = 2^3071 + 1; the expected value comes from Python's hashlib over
	// n.to_bytes(384, "little").
	n := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 3071), big.NewInt(1))
	got := MRSigner(&rsa.PublicKey{N: n, E: 3})
	if want := "82a76d9855709c172c4aac2bb13388c7e22270808e3d6b94ca6a44cc9a7a7f25"; hex.EncodeToString(got[:]) != want {
		t.Errorf("MRSigner(2^3071+1) = %x, want %s", got, want)
	}
	small := MRSigner(&rsa.PublicKey{N: big.NewInt(0x0102), E: 3})
	le := make([]byte, 384)
	le[0], le[1] = 0x02, 0x01
	if small != sha256.Sum256(le) {
		t.Errorf("MRSigner of a short modulus is not padded to 384 bytes")
	}
}

func TestParseKey(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signer := read("signer.pem")
	tests := []struct {
		name string
		in   []byte
		want error
		says string
	}{
		{"pkcs1", signer, nil, ""},
		{"pkcs8", read("signer-pkcs8.pem"), nil, ""},
		{"leading text", append([]byte("comment\n"), signer...), nil, ""},
		{"rsa-2048", read("key-2048-e65537.pem"), ErrInvalid, "found a 2048-bit odd modulus with exponent 65537"},
		{"ec", read("key-ec.pem"), ErrInvalid, "expected an RSA key, found *ecdsa.PrivateKey"},
		{"empty", nil, ErrMalformed, "expected a PEM block, found none"},
		{"two blocks", append(append([]byte{}, signer...), signer...), ErrMalformed, "found more data"},
		{"certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), ErrMalformed, `found "CERTIFICATE"`},
		{"encrypted", []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
			ErrMalformed, "encrypted keys are not supported"},
		{"bad der", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), ErrMalformed, "not a PKCS #1 RSA private key"},
		{"too large", make([]byte, 64<<10+1), ErrTooLarge, "expected at most 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseKey(tc.in)
			if tc.want == nil {
				if err != nil || key.N.BitLen() != 3072 || key.E != 3 {
					t.Fatalf("ParseKey = %v, want a 3072-bit key with e = 3", err)
				}
				return
			}
			if key != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("ParseKey = %v, want %v saying %q", err, tc.want, tc.says)
			}
			// No part of the key file may appear in the error.
			for line := range strings.Lines(string(tc.in)) {
				if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
}
