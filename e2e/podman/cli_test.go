package podman

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The tests in this file run the CLI on small generated images; they need
// no container engine.

// smallImage writes a two-layer image to the layout dir and returns its reference.
func smallImage(t *testing.T, dir string) string {
	t.Helper()
	a := newLayer(t, t.TempDir())
	a.file("/bin/app", []byte("#!/bin/app\n"), 0o755)
	a.file("/etc/app/secret.conf", []byte("password=correct-horse-battery-staple\n"), 0o600)
	b := newLayer(t, t.TempDir())
	b.file("/srv/index.html", []byte("hello\n"), 0o644)
	return writeImage(t, dir, "src", imageConfig{entrypoint: []string{"/bin/app"}, env: []string{"PATH=/bin"}}, a.done(), b.done())
}

func TestKeygen(t *testing.T) {
	e2etest.SkipShort(t)
	f := filepath.Join(t.TempDir(), "k.pem")
	mrsigner := keygen(t, f)
	fi, err := os.Stat(f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	key, err := enclave.ParseKey(readFile(t, f))
	if err != nil || enclave.MRSigner(&key.PublicKey) != mrsigner {
		t.Fatalf("the key does not have the MRSIGNER keygen printed: %v", err)
	}
	before := readFile(t, f)
	if _, errOut, err := cloister(t, "image", "keygen", f); err == nil || !strings.Contains(errOut, "never overwritten") {
		t.Errorf("keygen over an existing key: %v %s", err, errOut)
	}
	if string(readFile(t, f)) != string(before) {
		t.Error("keygen changed an existing key")
	}
}

func TestConvertCLI(t *testing.T) {
	e2etest.SkipShort(t)
	dir := t.TempDir()
	src := smallImage(t, filepath.Join(dir, "in"))
	signer, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "app.key")
	keygen(t, signer)
	args := []string{"--sign-key", signer, "--protect", "/etc/app", "--key-file", keyFile, "--isvprodid", "7", "--isvsvn", "3",
		"--coordinator-mrsigner", strings.Repeat("ab", 32), "--coordinator-isvprodid", "1", "--coordinator-min-isvsvn", "2",
		"--exclude", "/srv/", "--allow-env", "LANG", "--cmd", `["--verbose"]`}
	a := convert(t, src, "oci:"+filepath.Join(dir, "out")+":a", args...)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("--key-file was not created as 32 bytes, 0600: %v %v", err, fi)
	}
	b := convert(t, src, "oci:"+filepath.Join(dir, "out")+":b", args...)
	if a.Digest == "" || a.Digest != b.Digest || a.MREnclaveSimulation != b.MREnclaveSimulation {
		t.Errorf("converting twice with the same keys: %s and %s", a.Digest, b.Digest)
	}
	if len(a.ProtectedFiles) != 1 || a.ProtectedFiles[0].Path != "/etc/app/secret.conf" || a.Files != 1 ||
		a.ISVProdID != 7 || a.ISVSVN != 3 || strings.Join(a.Argv, " ") != "/bin/app --verbose" || a.Coordinator == nil {
		t.Errorf("report: %+v", a.ImageReport)
	}
	pkg := a.ManifestEntry.Packages["out"]
	w := a.ManifestEntry.Workloads["out"]
	if pkg.MRSigner != a.MRSigner || pkg.ISVProdID != 7 || pkg.MinISVSVN != 3 || w.Package != "out" ||
		len(w.FileKeys) != 1 || w.FileKeys[0] != "protected_files_key" || a.ManifestEntry.Secrets["protected_files_key"].Type != "user-defined" {
		t.Errorf("manifest entry: %+v", a.ManifestEntry)
	}

	// The text output says what to paste and how to upload the key.
	text := mustCloister(t, "image", "convert", src, "oci:"+filepath.Join(dir, "out")+":c", "--launcher", e2etest.Bins(t).Launcher,
		"--sign-key", signer, "--protect", "/etc/app/secret.conf", "--key-file", keyFile)
	if !contains(text, "MRSIGNER", `"mrsigner"`, "cloister secret set protected_files_key --file "+keyFile) {
		t.Errorf("text output:\n%s", text)
	}

	// inspect shows the same identity and --verify passes.
	var ins jsonoutput.ImageInspect
	out := mustCloister(t, "image", "inspect", "--verify", "--output", "json", "oci:"+filepath.Join(dir, "out")+":a")
	if err := json.Unmarshal([]byte(out), &ins); err != nil || !ins.Verified || ins.MREnclaveSimulation != a.MREnclaveSimulation {
		t.Errorf("inspect --verify: %v\n%s", err, out)
	}

	// Bad input is reported, every problem at once.
	_, errOut, err := cloister(t, "image", "convert", src, "oci:"+dir+"/x", "--launcher", e2etest.Bins(t).Launcher, "--protect", "/x",
		"--coordinator-mrsigner", "nothex", "--entrypoint", "[oops")
	if err == nil || !contains(errOut, "--sign-key is required", "--key-file", "--coordinator-mrsigner", "--entrypoint") {
		t.Errorf("convert with bad flags: %v\n%s", err, errOut)
	}
}

// TestConvertRefusals runs convert where it must stop: into the OCI layout
// it reads from, and on an image whose history holds a protected file's
// content as a build argument, until --redact-history clears it.
func TestConvertRefusals(t *testing.T) {
	e2etest.SkipShort(t)
	dir := t.TempDir()
	const secret = "password=correct-horse-battery-staple"
	a := newLayer(t, t.TempDir())
	a.file("/bin/app", []byte("#!/bin/app\n"), 0o755)
	a.file("/etc/app/secret.conf", []byte(secret+"\n"), 0o600)
	src := writeImage(t, filepath.Join(dir, "in"), "src", imageConfig{entrypoint: []string{"/bin/app"},
		createdBy: []string{"RUN |1 SECRET=" + secret + " /bin/sh -c echo \"$SECRET\" > /etc/app/secret.conf # buildkit"}}, a.done())
	signer, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "app.key")
	keygen(t, signer)
	args := []string{"--launcher", e2etest.Bins(t).Launcher, "--sign-key", signer, "--protect", "/etc/app", "--key-file", keyFile}

	index := readFile(t, filepath.Join(dir, "in", "index.json"))
	_, errOut, err := cloister(t, append([]string{"image", "convert", src, "oci:" + filepath.Join(dir, "in") + ":confidential"}, args...)...)
	if err == nil || !contains(errOut, "is the OCI layout of the source", "expected another directory") {
		t.Errorf("convert into the source's layout: %v\n%s", err, errOut)
	}
	if string(readFile(t, filepath.Join(dir, "in", "index.json"))) != string(index) {
		t.Error("convert into the source's layout changed it")
	}

	_, errOut, err = cloister(t, append([]string{"image", "convert", src, "oci:" + filepath.Join(dir, "out") + ":a"}, args...)...)
	if err == nil || !contains(errOut, "field history[0].created_by holds the content of protected /etc/app/secret.conf", "--redact-history") ||
		strings.Contains(errOut, secret) {
		t.Errorf("convert with the secret in the history: %v\n%s", err, errOut)
	}
	// Refused conversions made a key but did not save it: no image uses it.
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused conversions left the key file %s behind (stat: %v)", keyFile, err)
	}
	convert(t, src, "oci:"+filepath.Join(dir, "out")+":b", append(args[2:], "--redact-history")...)
	if found := scanBlobs(t, filepath.Join(dir, "out"), map[string][]byte{"secret": []byte(secret)}); len(found) > 0 {
		t.Errorf("protected plaintext in the converted image: %v", found)
	}
}

// TestLauncherLookup runs convert with no launcher next to the binary or
// in PATH: the error says how to build one.
func TestLauncherLookup(t *testing.T) {
	e2etest.SkipShort(t)
	dir := t.TempDir()
	lone := filepath.Join(dir, "bin", "cloister")
	if err := os.MkdirAll(filepath.Dir(lone), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, readFile(t, e2etest.Bins(t).Cloister), 0o755); err != nil {
		t.Fatal(err)
	}
	signer := filepath.Join(dir, "signer.pem")
	keygen(t, signer)
	t.Setenv("PATH", filepath.Join(dir, "empty"))
	out, errOut, err := run(t, lone, "image", "convert", smallImage(t, filepath.Join(dir, "in")), "oci:"+dir+"/out", "--sign-key", signer)
	if err == nil || !contains(errOut, "no cloister-launch binary", "CGO_ENABLED=0 go build") {
		t.Errorf("convert without a launcher: %v\n%s%s", err, out, errOut)
	}
}

func TestRegistryCLI(t *testing.T) {
	e2etest.SkipShort(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	smallImage(t, filepath.Join(dir, "in"))
	p, err := layout.FromPath(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	img, _ := p.Image(im.Manifests[0].Digest)
	ref, _ := name.ParseReference(host + "/team/app:src")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	signer := filepath.Join(dir, "signer.pem")
	keygen(t, signer)
	r := convert(t, "docker://"+host+"/team/app:src", "docker://"+host+"/team/app:confidential", "--sign-key", signer)
	out := mustCloister(t, "image", "inspect", "--verify", "docker://"+host+"/team/app:confidential")
	if !contains(out, r.Digest, "verified") {
		t.Errorf("inspect of the pushed image:\n%s", out)
	}
}

// TestBenchCommand runs the bench command at two small sizes: the
// conversion's peak memory stays within budget and does not grow with the
// image (layers and files are streamed, never held). Peak RSS depends on
// how promptly the garbage collector runs, which other tests running at the
// same time delay (one CI run saw 145 and 188 MiB where a quiet machine sees
// 118 and 126), so each size is converted three times and the least peak
// counts: what the conversion itself needs.
func TestBenchCommand(t *testing.T) {
	e2etest.SkipShort(t)
	rss := map[string]float64{}
	for _, size := range []string{"48MiB", "192MiB"} {
		for range 3 {
			var r jsonoutput.ImageBench
			out := mustCloister(t, "image", "bench", "--size", size, "--dir", t.TempDir(), "--launcher", e2etest.Bins(t).Launcher, "--output", "json")
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("bench output: %v\n%s", err, out)
			}
			if r.Files < 10 || r.Ratio <= 0 || r.PeakRSSBytes <= 0 || r.PeakRSSBytes > 256<<20 {
				t.Errorf("bench %s: %+v; want a ratio and a peak RSS within 256 MiB", size, r)
			}
			if p := float64(r.PeakRSSBytes); rss[size] == 0 || p < rss[size] {
				rss[size] = p
			}
			t.Logf("bench %s: ratio %.2f, peak RSS %.1f MiB", size, r.Ratio, float64(r.PeakRSSBytes)/(1<<20))
		}
	}
	// The Go heap settles as the image grows (about 15 MiB here); holding the
	// layers being read (32 MiB each, two at a time) would add 48 MiB more.
	if grow := rss["192MiB"] - rss["48MiB"]; grow > 32<<20 {
		t.Errorf("peak RSS grew by %.1f MiB for 144 MiB more image; the conversion holds data in memory", grow/(1<<20))
	}
}
