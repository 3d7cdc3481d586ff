package cli

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

const testSignKey = "../../enclave/testdata/signer.pem"

// TestEnclaveSign signs a manifest for a script and checks what it holds and that the printed
// measurement is the one the launcher computes: SimMRENCLAVE over the launcher's SHA-256 and
// the signed bytes. The launcher, cloister-launch, is recorded in the manifest.
func TestEnclaveSign(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "app.sh")
	launcher := filepath.Join(dir, "launcher")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	elf, err := os.ReadFile(e2etest.Bins(t).Launcher)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(launcher, elf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.sh", filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "enclave.json")
	code, stdout, stderr := run(t, "enclave", "sign", "--sign-key", testSignKey, "--manifest", out, "--launcher", launcher,
		"--file", dir, "--env", "A=b=c", "--allow-env", "LC_*", "--workdir", dir, "--user", "1000:1000", "--isvprodid", "4",
		"--coordinator-mrenclave", strings.Repeat("cd", 32), "--output", "json", "--", filepath.Join(dir, "run"), "x")
	if code != 0 {
		t.Fatalf("enclave sign: exit %d\n%s%s", code, stdout, stderr)
	}
	doc := decodeStrict[jsonoutput.EnclaveSign](t, stdout)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s, err := enclave.Parse(raw)
	if err != nil {
		t.Fatalf("the written manifest: %v", err)
	}
	m := s.Manifest
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, filepath.Base(f.Path))
	}
	if !slices.Equal(m.Argv, []string{filepath.Join(dir, "run"), "x"}) || m.Env["A"] != "b=c" || m.WorkingDir != dir ||
		m.User != "1000:1000" || m.ISVProdID != 4 || !slices.Equal(m.AllowEnv, []string{"LC_*"}) ||
		m.Coordinator == nil || len(m.Coordinator.MRENCLAVE) != 1 {
		t.Errorf("manifest %+v: not what the flags say", m)
	}
	// The launcher file is in dir too, so it is trusted like any other file there.
	if want := []string{"app.sh", "launcher", "run"}; !slices.Equal(paths, want) {
		t.Errorf("trusted files %q, want %q", paths, want)
	}
	if len(doc.Links) != 1 || doc.Links[0].Path != filepath.Join(dir, "run") || doc.Links[0].Target != script {
		t.Errorf("links %+v; want run -> app.sh", doc.Links)
	}
	want := enclave.SimMRENCLAVE(sha256.Sum256(elf), s.Raw)
	if doc.MREnclaveSimulation != enclave.Digest(want).String() || doc.Files != 3 {
		t.Errorf("printed %+v; want MRENCLAVE %x over 3 files", doc, want)
	}
	if l := m.Launcher; l == nil || l.SHA256 != sha256.Sum256(elf) || l.Size != int64(len(elf)) || l.GoBuildID == "" {
		t.Errorf("launcher record %+v; want cloister-launch's hash, size and Go build ID", l)
	}
}

// TestEnclaveSignRefuses checks that bad invocations fail before anything is written, each
// saying what is wrong.
func TestEnclaveSignRefuses(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "enclave.json")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no manifest", []string{"--sign-key", testSignKey, "--", "/bin/sh"}, "--manifest is required"},
		{"no key", []string{"--manifest", out, "--", "/bin/sh"}, "--sign-key is required"},
		{"bad env", []string{"--sign-key", testSignKey, "--manifest", out, "--env", "NOVALUE", "--", "/bin/sh"}, `--env "NOVALUE": expected NAME=VALUE`},
		{"program not found", []string{"--sign-key", testSignKey, "--manifest", out, "--env", "PATH=" + dir, "--", "no-such-program"}, `program "no-such-program" not found in PATH`},
		{"missing file", []string{"--sign-key", testSignKey, "--manifest", out, "--file", filepath.Join(dir, "none"), "--", "/bin/sh"}, "trusted files:"},
		{"prodid without signer", []string{"--sign-key", testSignKey, "--manifest", out, "--coordinator-isvprodid", "7", "--", "/bin/sh"}, "need --coordinator-mrsigner"},
		{"bad allow-env", []string{"--sign-key", testSignKey, "--manifest", out, "--allow-env", "A*B", "--", "/bin/sh"}, `allow_env[0] "A*B"`},
		{"launcher not ELF", []string{"--sign-key", testSignKey, "--manifest", out, "--launcher", testSignKey, "--", "/bin/sh"}, "--launcher: ../../enclave/testdata/signer.pem: expected an ELF executable"},
		{"no launcher", []string{"--sign-key", testSignKey, "--manifest", out, "--launcher", filepath.Join(dir, "none"), "--", "/bin/sh"}, "--launcher: open"},
		{"not a launcher", []string{"--sign-key", testSignKey, "--manifest", out, "--launcher", "/bin/true", "--", "/bin/sh"}, "--launcher: /bin/true is not a launcher that reads the enclave manifest's launcher record"},
		{"flags before launcher", []string{"--manifest", out, "--launcher", filepath.Join(dir, "none"), "--", "/bin/sh"}, "--sign-key is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"enclave", "sign"}, tc.args...)...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("enclave sign %q: exit %d, stderr %q; want a failure saying %q\n%s", tc.args, code, stderr, tc.want, stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("enclave sign %q wrote %s although it failed", tc.args, out)
			}
		})
	}
}

// TestImageCoordinatorCmd builds the Coordinator image twice into OCI layouts and checks that
// both print the same digest and identities, and that a dynamic binary is refused.
func TestImageCoordinatorCmd(t *testing.T) {
	bin := e2etest.Bins(t).Launcher // a static binary stands in for cloister
	dir := t.TempDir()
	var docs []jsonoutput.ImageCoordinator
	for _, dst := range []string{"oci:" + filepath.Join(dir, "a"), "oci:" + filepath.Join(dir, "b") + ":1"} {
		code, stdout, stderr := run(t, "image", "coordinator", "--sign-key", testSignKey, "--binary", bin, "--output", "json", dst)
		if code != 0 {
			t.Fatalf("image coordinator %s: exit %d\n%s%s", dst, code, stdout, stderr)
		}
		docs = append(docs, decodeStrict[jsonoutput.ImageCoordinator](t, stdout))
	}
	a, b := docs[0], docs[1]
	if a.Digest != b.Digest || a.MREnclaveSimulation != b.MREnclaveSimulation || a.Digest == "" {
		t.Errorf("two builds: %+v and %+v; want the same digest and identities", a, b)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if want := enclave.Digest(enclave.SimMeasurement(enclave.SimCoordinatorTag, sum[:])); a.MREnclaveSimulation != want.String() {
		t.Errorf("printed MRENCLAVE %s, want %s", a.MREnclaveSimulation, want)
	}
	if a.ISVProdID != attest.CoordinatorProdID || a.MRSignerSimulation == a.MRSigner {
		t.Errorf("printed %+v; want the Coordinator's ISVPRODID and the simulated signer apart from the key's", a)
	}

	dyn, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	code, _, stderr := run(t, "image", "coordinator", "--sign-key", testSignKey, "--binary", dyn, "oci:"+filepath.Join(dir, "c"))
	if code == 0 || !strings.Contains(stderr, "dynamically linked") || !strings.Contains(stderr, "CGO_ENABLED=0") {
		t.Errorf("image coordinator with %s: exit %d, stderr %q; want a refusal saying how to build a static binary", dyn, code, stderr)
	}
	code, _, stderr = run(t, "image", "coordinator", "--binary", bin, "oci:"+filepath.Join(dir, "d"))
	if code == 0 || !strings.Contains(stderr, "--sign-key is required") {
		t.Errorf("image coordinator without --sign-key: exit %d, stderr %q", code, stderr)
	}
}
