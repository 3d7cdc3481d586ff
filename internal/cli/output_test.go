package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/pki"
)

// wantError checks a failed command's output in JSON mode: a non-zero exit status, exactly one
// jsonoutput.Error on stdout with code and a message containing msg, and the same message on
// stderr for people.
func wantError(t *testing.T, code int, stdout, stderr, wantCode, msg string) jsonoutput.ErrorBody {
	t.Helper()
	if code == 0 {
		t.Fatalf("exit status 0, want a failure\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	e := decodeStrict[jsonoutput.Error](t, stdout).Error
	if e.Code != wantCode || !strings.Contains(e.Message, msg) {
		t.Errorf("error = %+v, want code %s and a message containing %q", e, wantCode, msg)
	}
	if want := "cloister: " + e.Message + "\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	return e
}

// TestJSONErrors checks that in JSON mode every failure found without a Coordinator is a JSON
// error document with its code, and that text mode prints nothing on stdout.
func TestJSONErrors(t *testing.T) {
	dir := t.TempDir()
	quote := filepath.Join(dir, "quote.bin")
	if err := os.WriteFile(quote, []byte("not a quote"), 0o644); err != nil {
		t.Fatal(err)
	}
	notVerified := []string{"status", "--coordinator", "127.0.0.1:1", "--config-dir", dir}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode string
		msg      string
	}{
		{"not verified", slices.Concat(notVerified, []string{"--output", "json"}), jsonoutput.CodeNotVerified, "has not been verified yet: run `cloister verify --coordinator 127.0.0.1:1` first"},
		{"short flag", slices.Concat(notVerified, []string{"-o", "json"}), jsonoutput.CodeNotVerified, "has not been verified yet"},
		{"flag=value", slices.Concat(notVerified, []string{"--output=json"}), jsonoutput.CodeNotVerified, "has not been verified yet"},
		{"unknown flag", []string{"status", "--bogus", "--output", "json"}, jsonoutput.CodeUsage, "unknown flag: --bogus"},
		{"unknown command", []string{"bogus", "-o", "json"}, jsonoutput.CodeUsage, `unknown command "bogus" for "cloister"`},
		{"missing argument", []string{"quote", "inspect", "-o", "json"}, jsonoutput.CodeUsage, "accepts 1 arg(s), received 0"},
		{"missing required flag", []string{"quote", "verify", quote, "-o", "json"}, jsonoutput.CodeUsage, `required flag(s) "collateral" not set`},
		{"bad flag value", []string{"quote", "verify", quote, "--collateral", dir, "--at", "yesterday", "-o", "json"}, jsonoutput.CodeUsage, "expected an RFC 3339 time"},
		{"unreadable file", []string{"quote", "inspect", filepath.Join(dir, "none.bin"), "-o", "json"}, jsonoutput.CodeFailed, "no such file"},
		{"bad input", []string{"quote", "inspect", quote, "-o", "json"}, jsonoutput.CodeFailed, quote},
		{"command without --output", []string{"secret", "set", "x", "--value", "v", "-o", "json"}, jsonoutput.CodeUsage, "unknown shorthand flag: 'o'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			wantError(t, code, stdout, stderr, tc.wantCode, tc.msg)
		})
	}

	// Text mode: the message on stderr only.
	for _, args := range [][]string{notVerified, {"status", "--output", "yaml"}, {"status", "--bogus", "--output", "text"}} {
		code, stdout, stderr := run(t, args...)
		if code == 0 || stdout != "" || !strings.HasPrefix(stderr, "cloister: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a failure on stderr only", args, code, stdout, stderr)
		}
	}
	if _, _, stderr := run(t, "status", "--output", "yaml"); !strings.Contains(stderr, `invalid argument "yaml" for "-o, --output" flag: "yaml": expected text or json`) {
		t.Errorf("--output yaml: stderr %q", stderr)
	}
}

// TestCommandsAgainstCoordinator runs the read commands against an in-process Coordinator and
// decodes their output into the jsonoutput types, failures included.
func TestCommandsAgainstCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Coordinator")
	}
	c := coordtest.Start(t)
	dir := t.TempDir()
	conn := []string{"--coordinator", c.ClientAddr, "--config-dir", dir}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append(args, conn...)...)
	}
	mustJSON := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := cli(append(args, "--output", "json")...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, code, stderr)
		}
		return stdout
	}

	v := decodeStrict[jsonoutput.Verify](t, mustJSON("verify", "--simulation", c.Platform.Dir()))
	pin := filepath.Join(dir, "coordinators", strings.ReplaceAll(c.ClientAddr, ":", "_"), "root.pem")
	if !v.Verified || !v.Simulation || !v.IdentityChecked || v.Coordinator != c.ClientAddr || v.PinnedAt != pin ||
		v.AdvisoryIDs == nil || len(v.RootFingerprint) != 64 || v.TCBStatus != "UpToDate" {
		t.Errorf("verify = %+v", v)
	}

	st := decodeStrict[jsonoutput.Status](t, mustJSON("status"))
	if st.State != api.StateWaitingForManifest || !st.Simulation || st.TEE != "sgx-simulation" || st.ManifestVersion != 0 {
		t.Errorf("status before a manifest = %+v", st)
	}
	certs := decodeStrict[jsonoutput.Certificates](t, mustJSON("certificate", "root")).Certificates
	if len(certs) != 1 || !certs[0].Simulation || certs[0].SHA256 != v.RootFingerprint {
		t.Errorf("certificate root = %+v; want the pinned root, marked simulated", certs)
	}

	// The Coordinator's refusals keep its code and request ID.
	code, stdout, stderr := cli("certificate", "intermediate", "-o", "json")
	if e := wantError(t, code, stdout, stderr, api.CodeNotReady, "coordinator refused (NOT_READY): no intermediate CA yet"); e.RequestID == "" {
		t.Errorf("a Coordinator refusal has no request_id: %+v", e)
	}

	m := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(m, loadgen.Manifest("bench"), 0o644); err != nil {
		t.Fatal(err)
	}
	set := decodeStrict[jsonoutput.ManifestSet](t, mustJSON("manifest", "set", m))
	if set.Version != 1 || len(set.Digest) != 64 {
		t.Errorf("manifest set = %+v", set)
	}
	if st := decodeStrict[jsonoutput.Status](t, mustJSON("status")); st.State != api.StateRunning || st.ManifestDigest != set.Digest {
		t.Errorf("status after the manifest = %+v; want running with digest %s", st, set.Digest)
	}
	if d := decodeStrict[jsonoutput.ManifestDiff](t, mustJSON("manifest", "diff", m)); d == nil || len(d) != 0 {
		t.Errorf("diff against the same manifest = %#v, want []", d)
	}
	code, stdout, stderr = cli("status", "--cert", "user.pem", "-o", "json")
	wantError(t, code, stdout, stderr, jsonoutput.CodeUsage, "--cert and --key go together")
	code, stdout, stderr = cli("secret", "get", "anything", "-o", "json")
	wantError(t, code, stdout, stderr, api.CodeUnauthenticated, "needs a client certificate")

	// A pinned root that differs from the Coordinator's.
	if err := os.WriteFile(pin, pki.EncodeCertPEM(testRoot(t, "another deployment")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli("verify", "--simulation", c.Platform.Dir(), "-o", "json")
	wantError(t, code, stdout, stderr, jsonoutput.CodePinChanged, "verify again with --replace-pin")
	// A failed verification: the Coordinator is not the expected enclave.
	code, stdout, stderr = cli("verify", "--simulation", c.Platform.Dir(), "--mrenclave", strings.Repeat("ab", 32), "-o", "json")
	wantError(t, code, stdout, stderr, jsonoutput.CodeNotVerified, "coordinator NOT verified")

	// A verified address where nothing listens any more.
	gone := filepath.Join(dir, "coordinators", "127.0.0.1_1", "root.pem")
	if err := os.MkdirAll(filepath.Dir(gone), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gone, pki.EncodeCertPEM(testRoot(t, "gone")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "status", "--coordinator", "127.0.0.1:1", "--config-dir", dir, "-o", "json")
	wantError(t, code, stdout, stderr, jsonoutput.CodeUnreachable, "dial tcp 127.0.0.1:1")
}

// TestErrorDocumentShape pins the error document's keys: those of the Coordinator API's errors.
func TestErrorDocumentShape(t *testing.T) {
	b, err := json.Marshal(errorDocument(withCode(jsonoutput.CodeUsage, os.ErrNotExist)))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"error":{"code":"USAGE","message":"file does not exist"}}`; string(b) != want {
		t.Errorf("error document = %s, want %s", b, want)
	}
}
