package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/manifest"
)

func TestUserNew(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"user", "new", "--dir", dir}, args...), nil, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run("alice", "--role", "ops")
	if code != 0 {
		t.Fatalf("user new alice: exit %d: %s", code, errOut)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "alice.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("certificate: CN %q, EKU %v, key %v; want alice, client auth, ECDSA", cert.Subject.CommonName, cert.ExtKeyUsage, cert.PublicKeyAlgorithm)
	}
	if d := time.Until(cert.NotAfter); d < 364*24*time.Hour || d > userValidity {
		t.Errorf("certificate valid for %v more; want a year", d)
	}
	fi, err := os.Stat(filepath.Join(dir, "alice.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("alice.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	var entry map[string]struct {
		Certificate string   `json:"certificate"`
		Roles       []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte("{"+out+"}"), &entry); err != nil {
		t.Fatalf("the printed entry is not a JSON object member: %v\n%s", err, out)
	}
	if e := entry["alice"]; e.Certificate != string(certPEM) || len(e.Roles) != 1 || e.Roles[0] != "ops" {
		t.Errorf("printed entry %+v; want alice.pem and role ops", e)
	}

	before, _ := os.ReadFile(filepath.Join(dir, "alice.key"))
	if code, _, errOut := run("alice"); code != 1 || !strings.Contains(errOut, "never overwritten") {
		t.Errorf("user new alice again: exit %d, %q; want a refusal", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "alice.key")); !bytes.Equal(before, after) {
		t.Errorf("alice.key changed")
	}
	if code, _, errOut := run("../x"); code != 1 || !strings.Contains(errOut, "expected 1 to 64") {
		t.Errorf("user new ../x: exit %d, %q; want a usage error", code, errOut)
	}
}

func TestUserNewManifest(t *testing.T) {
	doc := "{\n  \"roles\": {\"ops\": {\"resource\": \"manifest\", \"actions\": [\"update\"]}}\n}\n"
	withUsers := "{\n  \"users\": {\n    \"bob\": {\"certificate\": \"" + strings.ReplaceAll(userPEM(t, "bob"), "\n", `\n`) + "\"}\n  },\n  \"roles\": {\"ops\": {\"resource\": \"manifest\", \"actions\": [\"update\"]}}\n}\n"
	for _, tc := range []struct{ name, doc string }{
		{"no users", doc},
		{"empty users", "{\"users\": {}}"},
		{"other users", withUsers},
		{"empty", "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.json")
			if err := os.WriteFile(in, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := Main([]string{"user", "new", "alice", "--dir", dir, "--role", "ops", "--manifest", in}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var got struct {
				Users map[string]struct{ Certificate string } `json:"users"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
			}
			certPEM, _ := os.ReadFile(filepath.Join(dir, "alice.pem"))
			if got.Users["alice"].Certificate != string(certPEM) {
				t.Errorf("alice's certificate is not alice.pem:\n%s", stdout.String())
			}
			if tc.doc == withUsers && got.Users["bob"].Certificate == "" {
				t.Errorf("bob is gone:\n%s", stdout.String())
			}
			if tc.name != "empty" && tc.name != "empty users" {
				if _, err := manifest.Parse(stdout.Bytes()); err != nil {
					t.Errorf("the result is not a valid manifest: %v\n%s", err, stdout.String())
				}
			}
		})
	}
	t.Run("user there already", func(t *testing.T) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.json")
		os.WriteFile(in, []byte(`{"users": {"alice": {"certificate": "x"}}}`), 0o644)
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"user", "new", "alice", "--dir", dir, "--manifest", in}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `user "alice" is there already`) {
			t.Errorf("exit %d, %q; want a refusal", code, stderr.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "alice.key")); err == nil {
			t.Errorf("alice.key was written although the manifest was refused")
		}
	})
}

// userPEM makes a certificate PEM for name.
func userPEM(t *testing.T, name string) string {
	t.Helper()
	_, certPEM, _, err := newUserCert(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return string(certPEM)
}
