package enclave

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the generators")

// sum returns the SHA-256 of s as a Digest.
func sum(s string) Digest { return sha256.Sum256([]byte(s)) }

// minimalManifest is the smallest valid manifest.
func minimalManifest() *Manifest {
	return &Manifest{Version: FormatVersion, Argv: []string{"/bin/true"}}
}

// fullManifest sets every field; its files are deliberately out of order.
func fullManifest() *Manifest {
	return &Manifest{
		Version:    FormatVersion,
		ISVProdID:  7,
		ISVSVN:     2,
		Argv:       []string{"/usr/bin/app", "--config", "/etc/app.conf", "--greeting=<hi & bye>"},
		Env:        map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "Path": "case matters"},
		AllowEnv:   []string{"TZ", "LC_*"},
		WorkingDir: "/srv",
		User:       "1000:1000",
		Files: []File{
			{Path: "/usr/bin/app", SHA256: sum("app"), Size: 3},
			{Path: "/etc/app.conf", SHA256: sum("conf"), Size: 4},
			{Path: "/usr/lib/libapp.so.1", SHA256: sum("lib"), Size: 3},
		},
		ProtectedFiles: []ProtectedFile{
			{Path: "/etc/app/key.pem", Key: "app-key", Size: 100, SHA256: sum("ciphertext"), Version: 3,
				Mode: 0o640, UID: 0, GID: 33},
		},
		ProtectedDirs: []Directory{
			{Path: "/etc", Mode: 0o755},
			{Path: "/etc/app", Mode: 0o750, UID: 0, GID: 33},
		},
		EncryptedDir: EncryptedDirDefault,
		PlaintextDir: ProtectedDir,
		Exclude:      []string{"/tmp/", "/var/log/*.log"},
		Coordinator: &Coordinator{
			MRENCLAVE: []Digest{sum("coordinator")},
			MRSIGNER:  sum("coordinator signer"),
			ISVProdID: 1,
			MinISVSVN: 2,
		},
		Launcher:    &Launcher{SHA256: sum("launcher"), Size: 6345000, GoBuildID: "Nw8oXVYMxiQAjqnvhlho/DfCrn6BAEf2AHp88d-DL/fSM1_mS2-NWAn2NNvCUn/Td1S9vkG8i4sFEjKIx70"},
		EnclaveSize: "1G",
		Threads:     16,
	}
}

// keyFiles are random keys, generated only when missing.
var keyFiles = []struct {
	name string
	gen  func() ([]byte, error)
}{
	{"signer.pem", func() ([]byte, error) { return genKeyPEM() }},
	{"other.pem", func() ([]byte, error) { return genKeyPEM() }},
	{"key-2048-e65537.pem", func() ([]byte, error) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return MarshalKey(k), nil
	}},
	{"key-ec.pem", func() ([]byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), err
	}},
}

func genKeyPEM() ([]byte, error) {
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	return MarshalKey(k), nil
}

// derivedFiles are functions of signer.pem, rewritten by -update and
// otherwise compared byte for byte (which also checks that Sign is
// deterministic).
var derivedFiles = []struct {
	name string
	gen  func(t *testing.T, key *rsa.PrivateKey) []byte
}{
	{"signer-pkcs8.pem", func(t *testing.T, key *rsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}},
	{"minimal.json", func(t *testing.T, key *rsa.PrivateKey) []byte { return mustSign(t, minimalManifest(), key) }},
	{"full.json", func(t *testing.T, key *rsa.PrivateKey) []byte { return mustSign(t, fullManifest(), key) }},
}

func mustSign(t testing.TB, m *Manifest, key *rsa.PrivateKey) []byte {
	t.Helper()
	b, err := Sign(m, key)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return b
}

// loadKey reads a key from testdata/.
func loadKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (generate with go test ./enclave -run TestTestdata -update)", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		t.Fatalf("ParseKey(%s): %v", name, err)
	}
	return k
}

// TestTestdata generates testdata/ with -update, and otherwise checks that
// the derived files still match their generators.
func TestTestdata(t *testing.T) {
	for _, f := range keyFiles {
		name := filepath.Join("testdata", f.name)
		if _, err := os.Stat(name); err == nil || !*update {
			continue
		}
		b, err := f.gen()
		if err != nil {
			t.Fatalf("generating %s: %v", name, err)
		}
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := loadKey(t, "signer.pem")
	for _, f := range derivedFiles {
		name := filepath.Join("testdata", f.name)
		b := f.gen(t, key)
		if *update {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (generate with -update)", err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from its generator; review and rerun with -update", name)
		}
	}
}
