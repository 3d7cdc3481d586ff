package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// writeUser writes a self-signed user certificate and its key below dir and returns the PEM
// certificate and the --cert/--key flags.
func writeUser(t *testing.T, dir, name string, serial int64) (string, []string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return string(certPEM), []string{"--cert", certFile, "--key", keyFile}
}

func TestGovernanceCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Coordinator")
	}
	c := coordtest.Start(t)
	dir := t.TempDir()
	conn := []string{"--coordinator", c.ClientAddr, "--config-dir", dir}
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(append(args, conn...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := cli("", args...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, code, stderr)
		}
		return stdout
	}
	refused := func(stdin string, want string, args ...string) string {
		t.Helper()
		code, _, stderr := cli(stdin, args...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%q: exit %d, stderr %q; want a failure saying %q", args, code, stderr, want)
		}
		return stderr
	}
	must("verify", "--simulation", c.Platform.Dir())
	aliceCert, alice := writeUser(t, dir, "alice", 1)
	bobCert, bob := writeUser(t, dir, "bob", 2)
	doc := func(trustDomain string) string {
		var m map[string]any
		if err := json.Unmarshal(loadgen.Manifest("bench"), &m); err != nil {
			t.Fatal(err)
		}
		m["users"] = map[string]any{
			"alice": map[string]any{"certificate": aliceCert, "roles": []string{"admin"}},
			"bob":   map[string]any{"certificate": bobCert, "roles": []string{"admin"}},
		}
		m["roles"] = map[string]any{"admin": map[string]any{"resource": "manifest", "actions": []string{"update"}}}
		m["governance"] = map[string]any{"update_threshold": 2}
		m["settings"] = map[string]any{"trust_domain": trustDomain}
		b, _ := json.Marshal(m)
		p := filepath.Join(dir, trustDomain+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	must("manifest", "set", doc("one.test"))

	if out := must("manifest", "pending"); out != "No manifest update is pending.\n" {
		t.Errorf("pending with none: %q", out)
	}
	if got := decodeStrict[jsonoutput.ManifestPending](t, must("manifest", "pending", "-o", "json")); got.Pending {
		t.Errorf("pending --output json with none: %+v", got)
	}
	p := decodeStrict[jsonoutput.ManifestPending](t, must(append([]string{"manifest", "propose", doc("two.test"), "-o", "json"}, alice...)...))
	if !p.Pending || p.Proposer != "alice" || p.Threshold != 2 || len(p.Approvals) != 0 {
		t.Errorf("propose = %+v", p)
	}

	refused("", "approving needs --cert and --key", "manifest", "approve", "--yes")
	refused("", "--hash: expected a SHA-256", append([]string{"manifest", "approve", "--hash", "xyz"}, bob...)...)
	refused("", "the pending update is manifest "+p.Digest, append([]string{"manifest", "approve", "--yes", "--hash", strings.Repeat("0", 64)}, bob...)...)
	// Without --yes the changes are shown and the answer counts.
	stderr := refused("n\n", "not approved (answer y to approve, or pass --yes)", append([]string{"manifest", "approve"}, bob...)...)
	for _, w := range []string{"Pending manifest update (proposal " + p.ID + ")", "approvals         0 of 2", "changed  $.settings.trust_domain", "Approve this update? [y/N]"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("approve did not show %q:\n%s", w, stderr)
		}
	}
	code, stdout, stderr := cli("y\n", append([]string{"manifest", "approve"}, bob...)...)
	if code != 0 || !strings.Contains(stdout, "Approved (1 of 2); the update applies when 1 more updater(s) approve it.") {
		t.Fatalf("approve with y: exit %d\n%s%s", code, stdout, stderr)
	}
	pend := decodeStrict[jsonoutput.ManifestPending](t, must("manifest", "pending", "-o", "json"))
	if len(pend.Approvals) != 1 || pend.Approvals[0].User != "bob" || len(pend.Changes) != 1 || pend.Changes[0].Path != "$.settings.trust_domain" {
		t.Errorf("pending after one approval: %+v", pend)
	}
	out := must(append([]string{"manifest", "pending"}, alice...)...)
	if !strings.Contains(out, "approvals         1 of 2: bob") {
		t.Errorf("pending text:\n%s", out)
	}
	refused("", "--id: expected a proposal ID", append([]string{"manifest", "cancel", "--id", "nope"}, alice...)...)
	cancelled := decodeStrict[jsonoutput.ManifestPending](t, must(append([]string{"manifest", "cancel", "--id", p.ID, "-o", "json"}, alice...)...))
	if cancelled.Pending || cancelled.ID != p.ID {
		t.Errorf("cancel = %+v", cancelled)
	}
	refused("", "SVN: expected an integer from 0 to 65535", append([]string{"manifest", "update-svn", "bench", "x"}, alice...)...)
	refused("", "coordinator refused (FORBIDDEN)", append([]string{"manifest", "update-svn", "bench", "2"}, alice...)...)
}
