package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/enclave"
)

func coordinatorImage(t *testing.T, cfg CoordinatorConfig) *CoordinatorResult {
	t.Helper()
	res, err := Coordinator(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Coordinator: %v", err)
	}
	t.Cleanup(func() { res.Close() })
	return res
}

// TestCoordinatorImage builds the Coordinator image twice from the same inputs and checks
// that the digests match, that the layer holds exactly the expected root-owned entries at the
// fixed time, that the signed enclave manifest measures the binary, and that the printed
// simulated MRENCLAVE is the one a Coordinator running that binary quotes.
func TestCoordinatorImage(t *testing.T) {
	bin := testLauncher() // any static binary stands in for cloister
	cfg := CoordinatorConfig{Binary: bin, SignKey: testKey(), ISVProdID: 1, ISVSVN: 1, TempDir: t.TempDir()}
	a, b := coordinatorImage(t, cfg), coordinatorImage(t, cfg)
	if a.Report.Digest != b.Report.Digest {
		t.Fatalf("two builds from the same inputs: digests %s and %s, want equal", a.Report.Digest, b.Report.Digest)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	wantMR := enclave.SimMeasurement(enclave.SimCoordinatorTag, sum[:])
	if got := a.Report.MREnclaveSimulation; got != hex.EncodeToString(wantMR[:]) {
		t.Errorf("MREnclaveSimulation = %s, want %x (SimMeasurement of the binary)", got, wantMR)
	}
	wantSigner := enclave.MRSigner(&testKey().PublicKey)
	if a.Report.MRSigner != hex.EncodeToString(wantSigner[:]) {
		t.Errorf("MRSigner = %s, want %x", a.Report.MRSigner, wantSigner)
	}

	ls, err := a.Image.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(ls), err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d (%q:%q), mtime %v; want 0:0 without names at the epoch", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	wantNames := []string{"cloister/", "cloister/enclave.json", "cloister/gramine.manifest", "tmp/", "usr/", "usr/local/",
		"usr/local/bin/", "usr/local/bin/cloister-coordinator", "var/", "var/lib/", "var/lib/cloister/"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("layer entries %q, want %q", names, wantNames)
	}
	if !bytes.Equal(files["usr/local/bin/cloister-coordinator"], raw) {
		t.Error("usr/local/bin/cloister-coordinator differs from the binary")
	}
	s, err := enclave.Parse(files["cloister/enclave.json"])
	if err != nil {
		t.Fatalf("enclave manifest: %v", err)
	}
	if s.MRSigner() != wantSigner || len(s.Manifest.Files) != 1 || s.Manifest.Files[0].SHA256 != sum ||
		s.Manifest.Argv[1] != "coordinator" || s.Manifest.ISVProdID != 1 {
		t.Errorf("enclave manifest %+v: want the binary measured, signed by the key, running `cloister coordinator`", s.Manifest)
	}
	g := string(files["cloister/gramine.manifest"])
	for _, want := range []string{
		`libos.entrypoint = "/usr/local/bin/cloister-coordinator"`,
		`sgx.remote_attestation = "dcap"`,
		`{ type = "encrypted", path = "/var/lib/cloister", uri = "file:/var/lib/cloister", key_name = "_sgx_mrsigner" }`,
		`{ uri = "file:/usr/local/bin/cloister-coordinator", sha256 = "` + hex.EncodeToString(sum[:]) + `" }`,
		`"--client-addr", "0.0.0.0:4433", "--mesh-addr", "0.0.0.0:2001"`,
	} {
		if !strings.Contains(g, want) {
			t.Errorf("Gramine manifest lacks %s:\n%s", want, g)
		}
	}
	c, err := a.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if c.Architecture != runtime.GOARCH || c.OS != "linux" {
		t.Errorf("config platform %s/%s; want linux/%s, the binary's", c.OS, c.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(c.Config.Entrypoint, a.Report.Entrypoint) || c.Config.Labels[LabelMREnclaveSimulation] != a.Report.MREnclaveSimulation {
		t.Errorf("config entrypoint %q labels %v; want %q and the simulated MRENCLAVE", c.Config.Entrypoint, c.Config.Labels, a.Report.Entrypoint)
	}

	// Another key changes the signer and the digest, never the simulated MRENCLAVE.
	other, err := enclave.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg.SignKey = other
	o := coordinatorImage(t, cfg)
	if o.Report.Digest == a.Report.Digest || o.Report.MRSigner == a.Report.MRSigner || o.Report.MREnclaveSimulation != a.Report.MREnclaveSimulation {
		t.Errorf("another key: digest %s, signer %s, sim MRENCLAVE %s; want a new digest and signer, the same MRENCLAVE",
			o.Report.Digest, o.Report.MRSigner, o.Report.MREnclaveSimulation)
	}
}

// TestCoordinatorImageRefusesDynamicBinary checks that a binary that needs a dynamic loader,
// which would not run in the image, is refused with the way to build a static one.
// TestCoordinatorImageArgs: extra arguments are signed into both manifests' argv, after the
// built-in ones, and change the measured identity; arguments that cannot be are refused.
func TestCoordinatorImageArgs(t *testing.T) {
	cfg := CoordinatorConfig{Binary: testLauncher(), SignKey: testKey(), TempDir: t.TempDir()}
	plain := coordinatorImage(t, cfg)
	cfg.Args = []string{"--pccs-url=https://pccs.example:8081/sgx/certification/v4", "--log-level=debug"}
	with := coordinatorImage(t, cfg)
	if got := with.Report.Entrypoint[len(with.Report.Entrypoint)-2:]; !slices.Equal(got, cfg.Args) {
		t.Errorf("entrypoint %q; want it to end with %q", with.Report.Entrypoint, cfg.Args)
	}
	if plain.Report.Digest == with.Report.Digest {
		t.Error("the arguments did not change the image")
	}
	for _, bad := range [][]string{{"positional"}, {"--a\x00b"}, {strings.Repeat("-", 5000)}, slices.Repeat([]string{"--x"}, 65)} {
		cfg.Args = bad
		if _, err := Coordinator(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "argument") {
			t.Errorf("Coordinator with arguments %.40q: %v; want a refusal", bad, err)
		}
	}
}

func TestCoordinatorImageRefusesDynamicBinary(t *testing.T) {
	dyn, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	_, err = Coordinator(t.Context(), CoordinatorConfig{Binary: dyn, SignKey: testKey(), TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), BuildCoordinatorHint) {
		t.Fatalf("Coordinator with %s: %v; want a refusal naming %q", dyn, err, BuildCoordinatorHint)
	}
	_, err = Coordinator(t.Context(), CoordinatorConfig{Binary: filepath.Join(t.TempDir(), "none"), SignKey: testKey()})
	if err == nil || !strings.Contains(err.Error(), "cloister-coordinator binary") {
		t.Fatalf("Coordinator with a missing binary: %v; want an error naming the cloister-coordinator binary", err)
	}
}
