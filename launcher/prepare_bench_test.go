package launcher

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// BenchmarkPrepare1000 measures a launch up to the exec for an enclave manifest of 1,000
// trusted files, against a Coordinator on loopback: read and check the signed manifest, verify
// the files, measure the launcher, verify the Coordinator's quote, activate, write the
// delivered files. The metric excl-hash-ms/op leaves out the hashing (the trusted files and
// the launcher's own binary), whose throughput is benchmarked in package enclave.
func BenchmarkPrepare1000(b *testing.B) {
	dir := b.TempDir()
	mesh, platform, signed, path := benchLaunchSetup(b, dir, 1000)
	cfg := Config{
		Coordinator: mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation,
		SimDir: platform.Dir(), EnclaveManifest: path, RetryTimeout: 0,
		HostEnv: []string{"PATH=/usr/bin"}, Log: slog.New(slog.DiscardHandler),
	}
	ctx := b.Context()
	var hashing time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if err := signed.Manifest.VerifyFiles(ctx, "/", enclave.VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := attest.ExecutableSHA256(); err != nil {
			b.Fatal(err)
		}
		hashing += time.Since(t0)
		if _, err := Prepare(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	total := b.Elapsed() - hashing // the hashing above ran once outside Prepare and once inside
	b.ReportMetric(float64((total-hashing).Microseconds())/1000/float64(b.N), "excl-hash-ms/op")
}

// benchLaunchSetup starts an in-process Coordinator on a simulated platform, writes n trusted
// files and a signed enclave manifest for them, and sets a manifest admitting it.
func benchLaunchSetup(b *testing.B, dir string, n int) (mesh string, p *sim.Platform, signed *enclave.Signed, path string) {
	tc := coordtest.Start(b)
	c, p := tc.Core, tc.Platform
	ctx := b.Context()

	key, err := enclave.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	files := filepath.Join(dir, "files")
	m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: 1, ISVSVN: 1, Argv: []string{"/bin/true"}}
	root, _ := os.OpenRoot("/")
	defer root.Close()
	for i := range n {
		f := filepath.Join(files, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d", i))
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte(fmt.Sprintf("trusted file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		sum, size, err := enclave.HashFile(root, f[1:])
		if err != nil {
			b.Fatal(err)
		}
		m.Files = append(m.Files, enclave.File{Path: f, SHA256: sum, Size: size})
	}
	// The program, a trusted file like any other (the launcher runs nothing unmeasured).
	prog, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		b.Skip(err)
	}
	sum, size, err := enclave.HashFile(root, prog[1:])
	if err != nil {
		b.Fatal(err)
	}
	m.Argv = []string{prog}
	m.Files = append(m.Files, enclave.File{Path: prog, SHA256: sum, Size: size})
	slices.SortFunc(m.Files, func(x, y enclave.File) int { return strings.Compare(x.Path, y.Path) })
	raw, err := enclave.Sign(m, key)
	if err != nil {
		b.Fatal(err)
	}
	path = filepath.Join(dir, "enclave.json")
	os.WriteFile(path, raw, 0o644)
	if signed, err = enclave.Parse(raw); err != nil {
		b.Fatal(err)
	}
	signer := enclave.MRSigner(&key.PublicKey)
	out := filepath.Join(dir, "out")
	manifest := fmt.Sprintf(`{"packages":{"p":{"mrsigner":%q,"isvprodid":1,"min_isvsvn":1}},
"workloads":{"app":{"package":"p","files":{"%s/cert.pem":"{{.Workload.Chain}}","%s/key.pem":"{{.Workload.Key}}","%s/token":"{{.Secrets.t.Hex}}"},"env":{"TOKEN":"{{.Secrets.t.Hex}}"}}},
"secrets":{"t":{"type":"symmetric-key","size":256}}}`, hex.EncodeToString(signer[:]), out, out, out)
	if _, err := c.SetManifest(ctx, nil, []byte(manifest)); err != nil {
		b.Fatal(err)
	}
	return tc.MeshAddr, p, signed, path
}
