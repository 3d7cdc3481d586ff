package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// testNow is the creation time of test platforms, so that dates in tests are fixed.
var testNow = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// create makes a platform in a fresh temporary directory.
func create(t testing.TB, opts Options) *Platform {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = testNow
	}
	p, err := Create(filepath.Join(t.TempDir(), "platform"), opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return p
}

// testBody is an enclave report body like the ones the launcher makes.
func testBody() sgx.ReportBody {
	b := sgx.ReportBody{
		Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit, XFRM: 0x03},
		ISVProdID:  7,
		ISVSVN:     3,
	}
	b.MREnclave = sha256.Sum256([]byte("test enclave"))
	b.MRSigner = sha256.Sum256([]byte("test signer"))
	copy(b.ReportData[:], "report data of the test enclave")
	return b
}

// verifyRS checks an r ‖ s signature over SHA-256(msg).
func verifyRS(t testing.TB, what string, pub any, msg []byte, sig [sgx.SignatureSize]byte) {
	t.Helper()
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("%s: public key is %T, want *ecdsa.PublicKey", what, pub)
	}
	if !validRS(k, msg, sig) {
		t.Errorf("%s: signature does not verify", what)
	}
}

// validRS reports whether sig is a valid r ‖ s signature by pub over SHA-256(msg).
func validRS(pub *ecdsa.PublicKey, msg []byte, sig [sgx.SignatureSize]byte) bool {
	digest := sha256.Sum256(msg)
	return ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

func readTestFile(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCerts(t testing.TB, dir, name string) []*x509.Certificate {
	t.Helper()
	certs, err := parseCerts(readTestFile(t, dir, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return certs
}

// signedBody splits a PCS-shaped response into the exact bytes of its signed value and the
// signature, failing unless the file has exactly those two members.
func signedBody(t testing.TB, file []byte, key string) ([]byte, [sgx.SignatureSize]byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(file, &m); err != nil {
		t.Fatalf("decode %s response: %v", key, err)
	}
	if len(m) != 2 || m[key] == nil || m["signature"] == nil {
		t.Fatalf("%s response has members %v, want %q and \"signature\"", key, keysOf(m), key)
	}
	var sigHex string
	if err := json.Unmarshal(m["signature"], &sigHex); err != nil {
		t.Fatalf("signature: %v", err)
	}
	var sig [sgx.SignatureSize]byte
	if n, err := hex.Decode(sig[:], []byte(sigHex)); err != nil || n != len(sig) || len(sigHex) != 2*len(sig) {
		t.Fatalf("signature %q: want %d bytes of hex (%v)", sigHex, len(sig), err)
	}
	return m[key], sig
}

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// objectKeys returns the member names of a JSON object in the order they appear.
func objectKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	var ordered []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("expected a JSON object, found %v (%v)", tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		ordered = append(ordered, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ordered
}
