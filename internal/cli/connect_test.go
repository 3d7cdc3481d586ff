package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/pki"
)

// testRoot makes a self-signed CA certificate named cn.
func testRoot(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPinReplacesDurably checks that the pinned root, a trust anchor, is written through a fresh
// temporary name: a file planted at the old fixed name root.pem.tmp (here a symbolic link to a
// file elsewhere) neither receives the root nor stops the pin, and no temporary file is left.
func TestPinReplacesDurably(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	f := &connFlags{addr: "coordinator.example:4433", configDir: t.TempDir()}
	p, err := a.pinPath(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(elsewhere, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, p+".tmp"); err != nil {
		t.Fatal(err)
	}

	first, second := testRoot(t, "first"), testRoot(t, "second")
	if got, err := a.pin(f, first, false); err != nil || got != p {
		t.Fatalf("pin = %q, %v; want %q, nil", got, err, p)
	}
	if _, err := a.pin(f, second, false); err == nil || !strings.Contains(err.Error(), "--replace-pin") {
		t.Fatalf("pin of a different root without --replace-pin: %v; want a refusal naming --replace-pin", err)
	}
	if _, err := a.pin(f, second, true); err != nil {
		t.Fatalf("pin with replace: %v", err)
	}
	got, err := a.pinnedRoot(f)
	if err != nil || !got.Equal(second) {
		t.Fatalf("pinned root = %v, %v; want the second root", got, err)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "untouched" {
		t.Errorf("the file behind the planted %s.tmp link was written: %q", p, b)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pinned root mode = %v, %v; want 0600", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"root.pem", "root.pem.tmp"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("pin directory holds %v, want %v (no temporary file left)", names, want)
	}
	if b, _ := os.ReadFile(p); string(b) != string(pki.EncodeCertPEM(second)) {
		t.Errorf("root.pem is not the second root's PEM")
	}
}

// TestCreateExclusive checks that keys are created once and never overwritten.
func TestCreateExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := createExclusive(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := createExclusive(p, []byte("two"), 0o600); !os.IsExist(err) {
		t.Fatalf("second create: %v; want an error saying the file exists", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("key = %q after a refused second create, want %q", b, "one")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
}
