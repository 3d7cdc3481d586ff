package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
	"github.com/google/go-cmp/cmp"
)

// TestFinalView checks that the measured files are what a runtime builds
// from the layers: later layers win, whiteouts and opaque directories
// delete, a file replaces a directory, hard links take their target's
// content, symbolic links are not files.
func TestFinalView(t *testing.T) {
	img := testImage(t, []string{"/bin/app"},
		[]te{dir("bin/"), file("bin/app", "v1"), file("etc/a", "a"), file("etc/b", "b"),
			file("opt/old/x", "x"), file("opt/old/y", "y"), file("var/d/keep", "k"), file("srv/gone", "g"),
			file("srv/dir/f", "f"), hardlink("etc/a-link", "etc/a")},
		[]te{file("bin/app", "v2"), whiteout("etc/.wh.b"), file("opt/old/.wh..wh..opq", ""), file("opt/old/z", "z"),
			file("srv/.wh.gone", ""), file("srv/dir", "now a file"), symlink("usr/bin/app", "/bin/app"),
			file("etc/a", "a2"), hardlink("etc/a2-link", "etc/a")},
		[]te{dir("var/d/"), file("var/d/new", "n")},
	)
	res := convert(t, img, testConfig(t))
	got := map[string]string{}
	for _, f := range signedManifest(t, res.Image).Manifest.Files {
		got[f.Path] = f.SHA256.String()
	}
	sum := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	want := map[string]string{
		"/bin/app": sum("v2"), "/etc/a": sum("a2"), "/etc/a-link": sum("a"), "/etc/a2-link": sum("a2"),
		"/opt/old/z": sum("z"), "/srv/dir": sum("now a file"), "/var/d/keep": sum("k"), "/var/d/new": sum("n"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trusted files (-want +got):\n%s", diff)
	}
	if res.Report.Files != len(want) || res.Report.Layers != (LayerCounts{Copied: 3, Added: 1}) {
		t.Errorf("report: %d files, layers %+v; want %d files, 3 copied and 1 added", res.Report.Files, res.Report.Layers, len(want))
	}
}

// TestConvertedImage checks the configuration, labels, enclave manifest and
// measurement of a converted image.
func TestConvertedImage(t *testing.T) {
	img := testImage(t, []string{"/bin/app", "--serve"},
		[]te{file("bin/app", "app"), file("etc/app/secret.conf", "password=hunter2"), file("tmp/scratch", "s")})
	cfg := testConfig(t, "/etc/app/secret.conf")
	cfg.Exclude = []string{"/tmp/"}
	cfg.AllowEnv = []string{"LANG", "LC_*"}
	cfg.Cmd = &[]string{"--port", "80"}
	coord := &enclave.Coordinator{MRSIGNER: enclave.Digest{1}, ISVProdID: 1, MinISVSVN: 2}
	cfg.Coordinator = coord
	res := convert(t, img, cfg)
	s := signedManifest(t, res.Image)
	m := s.Manifest

	if !slices.Equal(m.Argv, []string{"/bin/app", "--serve", "--port", "80"}) || m.User != "app" || m.WorkingDir != "/srv" ||
		m.Env["GREETING"] != "hello" || m.ISVProdID != 3 || m.ISVSVN != 2 || m.EnclaveSize != DefaultEnclaveSize ||
		m.Threads != DefaultThreads || !slices.Contains(m.Exclude, "/tmp/") || !slices.Contains(m.Exclude, "/etc/hosts") ||
		!slices.Equal(m.AllowEnv, cfg.AllowEnv) || !cmp.Equal(m.Coordinator, coord) {
		t.Errorf("enclave manifest: %s", s.Raw)
	}
	if len(m.Files) != 1 || m.Files[0].Path != "/bin/app" {
		t.Errorf("files %+v; want only /bin/app (secret protected, /tmp excluded)", m.Files)
	}
	launcherSum, _, err := enclave.HashReader(must(os.Open(testLauncher())))
	if err != nil {
		t.Fatal(err)
	}
	if want, err := DescribeLauncher(testLauncher()); err != nil || !cmp.Equal(m.Launcher, want) || want.GoBuildID == "" {
		t.Errorf("launcher record %+v; want %+v (%v), with a Go build ID", m.Launcher, want, err)
	}
	wantMR := hexDigest(enclave.SimMRENCLAVE(launcherSum, s.Raw))
	mrsigner := hexDigest(enclave.MRSigner(&testKey().PublicKey))
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	wantLabels := map[string]string{LabelMREnclaveSimulation: wantMR, LabelMRSigner: mrsigner, LabelISVProdID: "3", LabelISVSVN: "2"}
	if !slices.Equal(c.Entrypoint, []string{LauncherPath}) || c.Cmd != nil || c.User != "" || !maps.Equal(c.Labels, wantLabels) {
		t.Errorf("config: entrypoint %q cmd %q user %q labels %v; want the launcher, no cmd, root, labels %v",
			c.Entrypoint, c.Cmd, c.User, c.Labels, wantLabels)
	}
	if res.Report.MREnclaveSimulation != wantMR || res.Report.MRSigner != mrsigner {
		t.Errorf("report %+v; want MRENCLAVE %s", res.Report, wantMR)
	}

	// The added layer: the launcher, the manifests, the encrypted file.
	ls, _ := res.Image.Layers()
	files, _ := layerFiles(t, ls[len(ls)-1])
	if !bytes.Equal(files["cloister/launch"], must(os.ReadFile(testLauncher()))) || files["cloister/gramine.manifest"] == nil {
		t.Error("the added layer lacks the launcher or the Gramine manifest")
	}
	ct := files["cloister/protected/etc/app/secret.conf"]
	var plain bytes.Buffer
	v, err := protect.Decrypt(&plain, bytes.NewReader(ct), fileKey, "/etc/app/secret.conf")
	if err != nil || v != 1 || plain.String() != "password=hunter2" {
		t.Errorf("decrypting the protected file: version %d, %q, %v", v, plain.String(), err)
	}
	pf := m.ProtectedFiles[0]
	if pf.SHA256 != enclave.Digest(sha256.Sum256(ct)) || pf.Size != 16 || pf.Key != DefaultKeyName {
		t.Errorf("protected file record %+v does not describe the encrypted file", pf)
	}
	if m.EncryptedDir != "/cloister/protected" || m.PlaintextDir != enclave.ProtectedDir {
		t.Errorf("encrypted_dir %q, plaintext_dir %q", m.EncryptedDir, m.PlaintextDir)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEntrypointOverride checks docker's rule: a new entrypoint drops the image's Cmd.
func TestEntrypointOverride(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("bin/other", "o")})
	cfg := testConfig(t)
	cfg.Entrypoint = &[]string{"/bin/other", "-x"}
	if got := signedManifest(t, convert(t, img, cfg).Image).Manifest.Argv; !slices.Equal(got, []string{"/bin/other", "-x"}) {
		t.Errorf("argv %q", got)
	}
	cfg.Entrypoint = &[]string{}
	if _, err := Convert(context.Background(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), "no Entrypoint or Cmd") {
		t.Errorf("empty argv: %v", err)
	}
}

// TestReproducible converts the same image twice, and with another file key.
func TestReproducible(t *testing.T) {
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "app"), file("etc/secret", "s1")}, []te{file("etc/secret", "s2"), file("opt/x", "x")})
	cfg := testConfig(t, "/etc/secret")
	a, b := convert(t, img, cfg), convert(t, img, cfg)
	da, _ := a.Image.Digest()
	db, _ := b.Image.Digest()
	if da != db || a.Report.MREnclaveSimulation != b.Report.MREnclaveSimulation {
		t.Fatalf("two conversions: digests %s and %s, MRENCLAVE %s and %s", da, db, a.Report.MREnclaveSimulation, b.Report.MREnclaveSimulation)
	}
	dir := t.TempDir()
	for _, ref := range []string{"oci:" + dir + "/one:x", "oci:" + dir + "/two:x", "oci:" + dir + "/one:x"} {
		d, err := Write(context.Background(), ref, a.Image)
		if err != nil || d != da {
			t.Fatalf("Write %s: %s, %v; want %s", ref, d, err, da)
		}
		s, err := Open(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if s.digest != da {
			t.Fatalf("reopened %s: digest %s; want %s", ref, s.digest, da)
		}
		s.Close()
	}
	cfg.FileKey = bytes.Repeat([]byte{8}, 32)
	c := convert(t, img, cfg)
	if dc, _ := c.Image.Digest(); dc == da {
		t.Error("another file key gave the same image")
	}
}

// TestTempFilesRemoved checks that a failed conversion, and Close, leave nothing behind.
func TestTempFilesRemoved(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("etc/secret", "s")})
	cfg := testConfig(t, "/etc/secret")
	res, err := Convert(context.Background(), source(t, img), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	cfg.Protect = []string{"/missing"}
	if _, err := Convert(context.Background(), source(t, img), cfg); err == nil {
		t.Fatal("protecting a missing path succeeded")
	}
	if left, _ := os.ReadDir(cfg.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
}

// TestConfigErrors checks that every configuration problem is reported at once.
func TestConfigErrors(t *testing.T) {
	cfg := Config{Protect: []string{"/x"}, FileKey: []byte("short"), EnclaveSize: "3G", Threads: -1,
		Exclude: []string{"relative"}, EncryptedVolumes: []string{"/cloister/data"}, Limits: Limits{MaxEntries: -1}}
	_, err := Convert(context.Background(), nil, cfg)
	for _, want := range []string{"no signing key", "no launcher", "32-byte file key", "enclave_size", "threads", "exclude", "reserved", "limits"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestLauncherChecks refuses launchers that are not static ELF executables.
func TestLauncherChecks(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app")})
	notELF := t.TempDir() + "/launch"
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	for _, tc := range []struct{ path, want string }{
		{notELF, "expected an ELF executable"},
		{"/nonexistent/cloister-launch", "CGO_ENABLED=0 go build"},
	} {
		cfg := testConfig(t)
		cfg.Launcher = tc.path
		if _, err := Convert(context.Background(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("launcher %s: %v; want %q", tc.path, err, tc.want)
		}
	}
	if dyn, err := os.Executable(); err == nil {
		if li, err := checkLauncher(dyn); err == nil {
			t.Logf("the test binary is static (%x); not checking the dynamic case", li.sum[:4])
		} else if !strings.Contains(err.Error(), "dynamically linked") && !strings.Contains(err.Error(), "ELF") {
			t.Errorf("dynamic launcher: %v", err)
		}
	}
}

func TestPackageName(t *testing.T) {
	for in, want := range map[string]string{
		"docker://registry.example/team/Web_App:1.2": "web-app",
		"oci:/tmp/images/redis:latest":               "redis",
		"docker-archive:/tmp/x.tar:localhost/py:3":   "py",
		"docker-archive:/tmp/app.tar":                "app",
		"oci:/___:x":                                 "app",
	} {
		if got := PackageName(in); got != want {
			t.Errorf("PackageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Reference
		err  string
	}{
		{in: "oci:dir", want: Reference{Transport: "oci", Path: "dir"}},
		{in: "oci:/a/b:tag", want: Reference{Transport: "oci", Path: "/a/b", Name: "tag"}},
		{in: "docker-archive:x.tar:localhost/app:1", want: Reference{Transport: "docker-archive", Path: "x.tar", Name: "localhost/app:1"}},
		{in: "docker://127.0.0.1:5000/app:1", want: Reference{Transport: "docker", Name: "127.0.0.1:5000/app:1"}},
		{in: "docker:app", err: "expected docker://"},
		{in: "dir:/x", err: "unknown transport"},
		{in: "app:1", err: "unknown transport"},
		{in: "oci:", err: "expected a path"},
		{in: "docker-archive:x.tar:UPPER/Case:1", err: "docker-archive"},
		{in: "plain", err: "expected oci:"},
	} {
		got, err := ParseReference(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseReference(%q) error %v; want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.err == "" && got.String() != tc.in:
			t.Errorf("%+v.String() = %q; want %q", got, got.String(), tc.in)
		}
	}
}

func TestReportSnippet(t *testing.T) {
	r := Report{MRSigner: "ab", ISVProdID: 4, ISVSVN: 7, ProtectedFiles: []enclave.ProtectedFile{{Key: "k1"}, {Key: "k1"}, {Key: "k2"}}}
	s := r.Snippet("web")
	want := Snippet{
		Packages:  map[string]SnippetPackage{"web": {MRSigner: "ab", ISVProdID: 4, MinISVSVN: 7}},
		Workloads: map[string]SnippetWorkload{"web": {Package: "web", FileKeys: []string{"k1", "k2"}}},
		Secrets:   map[string]SnippetSecret{"k1": {Type: "user-defined"}, "k2": {Type: "user-defined"}},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("snippet (-want +got):\n%s", diff)
	}
	if got := strconv.Quote(PackageName("")); got != `"app"` {
		t.Errorf("PackageName(\"\") = %s", got)
	}
	if !errors.Is(&MismatchError{}, ErrMismatch) {
		t.Error("MismatchError does not wrap ErrMismatch")
	}
}

// TestCancelAndProgress cancels a conversion, and watches one report progress.
func TestCancelAndProgress(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("etc/s", "S")}, []te{file("opt/x", "x")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Convert(ctx, source(t, img), testConfig(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Convert with a canceled context: %v", err)
	}
	last := map[string]Progress{}
	res, err := Convert(context.Background(), source(t, img), testConfig(t, "/etc/s"), WithProgress(func(p Progress) { last[p.Phase] = p }))
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	r, w := last["reading"], last["rewriting"]
	if r.Layers != 2 || r.LayersDone != 2 || r.Files != 3 || r.Bytes != r.TotalBytes || r.Bytes == 0 || w.Layers != 1 || w.LayersDone != 1 {
		t.Errorf("last progress: reading %+v, rewriting %+v", r, w)
	}
}
