package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/pki"
)

// writeLog writes an export of n entries signed by a new root, the root, and a head seen at
// entry seen; it returns their paths.
func writeLog(t *testing.T, n int, seen uint64) (export, rootPEM, seenJSON string) {
	t.Helper()
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	var ch audit.Chain
	var buf bytes.Buffer
	w, err := audit.NewWriter(&buf, 1, audit.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	for i := range n {
		e := &audit.Entry{Time: at.Add(time.Duration(i) * time.Second), Kind: audit.KindSecretWrite, Actor: "admin", Fields: map[string]string{"secrets": "s"}}
		enc, _, err := ch.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Entry(enc); err != nil {
			t.Fatal(err)
		}
		if e.Seq == seen {
			h, err := ch.Head(at, root.Key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(map[string]any{"state": "running", "audit_head": h}) // as cloister status --output json
			seenJSON = filepath.Join(dir, "seen.json")
			os.WriteFile(seenJSON, b, 0o644)
		}
	}
	h, err := ch.Head(at.Add(time.Hour), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(h); err != nil {
		t.Fatal(err)
	}
	export, rootPEM = filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "root.pem")
	os.WriteFile(export, buf.Bytes(), 0o644)
	os.WriteFile(rootPEM, pki.EncodeCertPEM(root.Cert), 0o644)
	return export, rootPEM, seenJSON
}

func TestAuditVerifyCommand(t *testing.T) {
	export, root, seen := writeLog(t, 5, 3)
	code, stdout, stderr := run(t, "audit", "verify", export, "--root", root, "--seen", seen, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	rep := decodeStrict[jsonoutput.AuditVerify](t, stdout)
	if !rep.Valid || rep.First != 1 || rep.Last != 5 || rep.Entries != 5 || rep.Kinds["secret.write"] != 5 || !rep.SeenChecked || rep.Head == nil || rep.Head.Seq != 5 {
		t.Errorf("report %+v", rep)
	}
	code, stdout, _ = run(t, "audit", "verify", export, "--root", root)
	if code != 0 || !strings.Contains(stdout, "verified: entries 1 to 5 (5 entries)") || !strings.Contains(stdout, "secret.write") {
		t.Errorf("text report: exit %d\n%s", code, stdout)
	}

	// A dropped entry: exit 1, the entry and line named, in both formats.
	b, _ := os.ReadFile(export)
	lines := strings.SplitAfter(string(b), "\n")
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(strings.Join(append(lines[:3:3], lines[4:]...), "")), 0o644)
	code, stdout, stderr = run(t, "audit", "verify", bad, "--root", root, "--output", "json")
	rep = decodeStrict[jsonoutput.AuditVerify](t, stdout)
	if code != 1 || rep.Valid || rep.Problem != "line 4: entry 4: expected entry 3 (an entry dropped, reordered or inserted?)" || !strings.Contains(stderr, "entry 4: expected entry 3") {
		t.Errorf("dropped entry: exit %d, report %+v, stderr %q", code, rep, stderr)
	}
	// Another deployment's root.
	_, other, _ := writeLog(t, 1, 0)
	if code, stdout, _ := run(t, "audit", "verify", export, "--root", other); code != 1 || !strings.Contains(stdout, "signature does not verify with the deployment root") {
		t.Errorf("another root: exit %d\n%s", code, stdout)
	}
	// A seen head the log does not reach.
	_, _, later := writeLog(t, 9, 8)
	if code, _, stderr := run(t, "audit", "verify", export, "--root", root, "--seen", later); code != 1 || !strings.Contains(stderr, "head you saw before") {
		t.Errorf("a seen head of another log: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "audit", "verify", export, "--root", root, "--seen", root); code == 0 || !strings.Contains(stderr, "expected a signed audit head") {
		t.Errorf("--seen not a head: exit %d, %s", code, stderr)
	}
}

// FuzzParseHead checks that parseHead, which reads --seen files and saved heads, never panics
// and accepts only signed heads.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte(`{"seq":3,"hash":"` + strings.Repeat("ab", 32) + `","time":"2026-12-01T00:00:00Z","signature":"MEUCIQ=="}`))
	f.Add([]byte(`{"state":"running","audit_head":{"seq":1,"hash":"` + strings.Repeat("00", 32) + `","time":"2026-12-01T00:00:00Z","signature":"AA=="}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHead(b)
		if err == nil && len(h.Signature) == 0 {
			t.Fatal("accepted a head without a signature")
		}
	})
}
