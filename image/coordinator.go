package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxCoordinatorArgs and maxCoordinatorArgLen bound CoordinatorConfig.Args, which go into
// the signed manifests.
const (
	maxCoordinatorArgs   = 64
	maxCoordinatorArgLen = 4096
)

// checkCoordinatorArgs refuses arguments that cannot be signed into the enclave's argv: too
// many, too long, empty, with a NUL, or not a flag (the Coordinator takes no positional one).
func checkCoordinatorArgs(args []string) error {
	if len(args) > maxCoordinatorArgs {
		return fmt.Errorf("%d Coordinator arguments; expected at most %d", len(args), maxCoordinatorArgs)
	}
	for _, a := range args {
		switch {
		case len(a) > maxCoordinatorArgLen:
			return fmt.Errorf("Coordinator argument of %d bytes; expected at most %d", len(a), maxCoordinatorArgLen)
		case strings.ContainsRune(a, 0):
			return fmt.Errorf("Coordinator argument %q contains a NUL byte", a)
		case !strings.HasPrefix(a, "-"):
			return fmt.Errorf("Coordinator argument %q: expected a flag such as --pccs-url=URL", a)
		}
	}
	return nil
}

// Paths and addresses of the Coordinator image ([Coordinator]).
const (
	// CoordinatorBinaryPath is the cloister-coordinator binary in the Coordinator image.
	CoordinatorBinaryPath = "/usr/local/bin/cloister-coordinator"
	// CoordinatorDataDir is the Coordinator's state directory: mount a volume there. Under
	// Gramine it is an encrypted mount sealed to the enclave's signer.
	CoordinatorDataDir = "/var/lib/cloister"
	// CoordinatorClientAddr and CoordinatorMeshAddr are the addresses the Coordinator
	// listens on: the client API and the workload API.
	CoordinatorClientAddr = "0.0.0.0:4433"
	CoordinatorMeshAddr   = "0.0.0.0:2001"
	// CoordinatorSealKey is the Gramine key of the encrypted state mount: the enclave's
	// signer key, so that a new Coordinator version signed with the same key reads the state.
	CoordinatorSealKey = "_sgx_mrsigner"
	// DefaultCoordinatorEnclaveSize and DefaultCoordinatorThreads are the Coordinator
	// enclave's size and thread count unless CoordinatorConfig says otherwise.
	DefaultCoordinatorEnclaveSize = "2G"
	DefaultCoordinatorThreads     = 64
)

// BuildCoordinatorHint says how to build the static cloister-coordinator binary of the
// Coordinator image (stripped: the enclave hashes and loads every byte of it).
const BuildCoordinatorHint = "CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o cloister-coordinator ./cmd/cloister-coordinator"

// coordinatorAllowEnv lists the host variables the Coordinator enclave receives.
var coordinatorAllowEnv = []string{"CLOISTER_PCS_API_KEY", "GOGC", "GOMAXPROCS"}

// CoordinatorConfig says how to build the Coordinator image. Binary and SignKey are required.
type CoordinatorConfig struct {
	// Binary is the cloister-coordinator binary (cmd/cloister-coordinator): a statically linked
	// ELF executable.
	Binary string
	// SignKey signs the enclave manifest; RSA-3072 with exponent 3, the key that signs the
	// Gramine manifest for SGX (gramine-sgx-sign --key).
	SignKey *rsa.PrivateKey
	// ISVProdID and ISVSVN are the Coordinator enclave's product ID and security version; the
	// CLI passes the values the Coordinator reports (attest.CoordinatorProdID, CoordinatorSVN).
	ISVProdID, ISVSVN uint16
	// Args are extra arguments for `cloister coordinator`, after the fixed ones (data
	// directory and addresses). A container may append more (--simulation DIR).
	Args []string
	// EnclaveSize and Threads size the enclave; defaults [DefaultCoordinatorEnclaveSize] and
	// [DefaultCoordinatorThreads].
	EnclaveSize string
	Threads     int
	// GramineLibDir is where Gramine is installed in the image that runs this one on SGX;
	// default [DefaultGramineLibDir].
	GramineLibDir string
	// Created is the image's creation time and every file's modification time; the zero value
	// means the Unix epoch, so that the image is reproducible.
	Created time.Time
	// TempDir holds the layer until the result is closed; default os.TempDir().
	TempDir string
}

// CoordinatorReport describes a Coordinator image. Hex values are lowercase.
type CoordinatorReport struct {
	// Digest is the image manifest's digest ("sha256:…").
	Digest string
	// MREnclaveSimulation is the MRENCLAVE the Coordinator quotes in simulation:
	// enclave.SimMeasurement(enclave.SimCoordinatorTag, BinarySHA256). On SGX hardware the
	// MRENCLAVE comes from gramine-sgx-sign over the Gramine manifest.
	MREnclaveSimulation string
	// MRSigner is the SGX signer identity of the signing key: the Coordinator's MRSIGNER on
	// SGX once gramine-sgx-sign signed its Gramine manifest with the same key.
	MRSigner string
	// ISVProdID and ISVSVN are the enclave's product ID and security version.
	ISVProdID, ISVSVN uint16
	// BinarySHA256 and BinarySize describe the cloister-coordinator binary.
	BinarySHA256 string
	BinarySize   int64
	// Entrypoint is the image's command line.
	Entrypoint []string
}

// CoordinatorResult is a built Coordinator image. Close it when it is written.
type CoordinatorResult struct {
	Image  v1.Image
	Report CoordinatorReport
	tmp    string
}

// Close removes the temporary layer file.
func (r *CoordinatorResult) Close() error {
	if r == nil || r.tmp == "" {
		return nil
	}
	return os.RemoveAll(r.tmp)
}

// Coordinator builds the Coordinator as a confidential image: one layer holding the static
// cloister-coordinator binary ([CoordinatorBinaryPath]), the empty state directory
// ([CoordinatorDataDir]), the enclave manifest signed with cfg.SignKey (the Coordinator's
// command line, environment and binary; [EnclaveManifestPath]) and a Gramine manifest for SGX
// ([GramineManifestPath]: the binary and the enclave manifest trusted, quotes and sealing keys
// from /dev/attestation, the state directory an encrypted mount under [CoordinatorSealKey]).
// The entrypoint is `cloister-coordinator coordinator --data-dir … --client-addr 0.0.0.0:4433
// --mesh-addr 0.0.0.0:2001`; arguments given to the container are appended (in simulation:
// --simulation DIR with the platform mounted at DIR).
//
// The image is a function of the binary, the key and cfg only: fixed timestamps, fixed file
// order, root-owned entries without names, deterministic compression.
func Coordinator(ctx context.Context, cfg CoordinatorConfig) (_ *CoordinatorResult, err error) {
	if cfg.SignKey == nil {
		return nil, errors.New("coordinator image: no signing key; expected an RSA-3072 key with exponent 3")
	}
	if cfg.EnclaveSize == "" {
		cfg.EnclaveSize = DefaultCoordinatorEnclaveSize
	}
	if cfg.Threads == 0 {
		cfg.Threads = DefaultCoordinatorThreads
	}
	if cfg.GramineLibDir == "" {
		cfg.GramineLibDir = DefaultGramineLibDir
	}
	if err := checkCoordinatorArgs(cfg.Args); err != nil {
		return nil, fmt.Errorf("coordinator image: %w", err)
	}
	if !path.IsAbs(cfg.GramineLibDir) {
		return nil, fmt.Errorf("coordinator image: gramine library directory %q: expected an absolute path", cfg.GramineLibDir)
	}
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	bin, arch, err := staticBinary(cfg.Binary, "cloister-coordinator binary", BuildCoordinatorHint)
	if err != nil {
		return nil, fmt.Errorf("coordinator image: %w", err)
	}
	argv := slices.Concat([]string{CoordinatorBinaryPath, "coordinator",
		"--data-dir", CoordinatorDataDir, "--client-addr", CoordinatorClientAddr, "--mesh-addr", CoordinatorMeshAddr}, cfg.Args)
	m := &enclave.Manifest{
		Version:     enclave.FormatVersion,
		ISVProdID:   cfg.ISVProdID,
		ISVSVN:      cfg.ISVSVN,
		Argv:        argv,
		AllowEnv:    coordinatorAllowEnv,
		WorkingDir:  "/",
		Files:       []enclave.File{{Path: CoordinatorBinaryPath, SHA256: bin.sum, Size: bin.size}},
		Exclude:     []string{CoordinatorDataDir + "/"},
		EnclaveSize: cfg.EnclaveSize,
		Threads:     cfg.Threads,
	}
	signed, err := enclave.Sign(m, cfg.SignKey)
	if err != nil {
		return nil, fmt.Errorf("coordinator image: signing the enclave manifest: %w", err)
	}
	var gramine bytes.Buffer
	if err := coordinatorGramineManifest(&gramine, m, &cfg, bin.sum, sha256.Sum256(signed)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(cfg.TempDir, "cloister-coordinator-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	layer, err := coordinatorLayer(tmp, created, bin, signed, gramine.Bytes())
	if err != nil {
		return nil, err
	}
	simMR := enclave.SimMeasurement(enclave.SimCoordinatorTag, bin.sum[:])
	report := CoordinatorReport{
		MREnclaveSimulation: hexDigest(simMR),
		MRSigner:            hexDigest(enclave.MRSigner(&cfg.SignKey.PublicKey)),
		ISVProdID:           cfg.ISVProdID,
		ISVSVN:              cfg.ISVSVN,
		BinarySHA256:        bin.sum.String(),
		BinarySize:          bin.size,
		Entrypoint:          argv,
	}
	conf := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			Entrypoint:   argv,
			Env:          []string{"PATH=/usr/local/bin"},
			WorkingDir:   "/",
			Volumes:      map[string]struct{}{CoordinatorDataDir: {}},
			ExposedPorts: map[string]struct{}{"4433/tcp": {}, "2001/tcp": {}},
			Labels: map[string]string{
				LabelMREnclaveSimulation: report.MREnclaveSimulation,
				LabelMRSigner:            report.MRSigner,
				LabelISVProdID:           fmt.Sprint(cfg.ISVProdID),
				LabelISVSVN:              fmt.Sprint(cfg.ISVSVN),
			},
		},
		History: []v1.History{{
			Created:   v1.Time{Time: created},
			CreatedBy: "cloister image coordinator",
			Comment:   "the Cloister Coordinator: static binary, signed enclave manifest, Gramine manifest",
		}},
	}
	img, err := newOutImage(types.OCIManifestSchema1, conf, []outLayer{{desc: layer.descriptor(), layer: layer}})
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	report.Digest = d.String()
	return &CoordinatorResult{Image: img, Report: report, tmp: tmp}, nil
}

// coordinatorLayer writes the Coordinator image's only layer.
func coordinatorLayer(dir string, mtime time.Time, bin *launcherInfo, signed, gramine []byte) (*fileLayer, error) {
	files := []addedFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "cloister/", Mode: 0o755}},
		{hdr: tar.Header{Name: "cloister/enclave.json", Mode: 0o444, Size: int64(len(signed))}, data: signed},
		{hdr: tar.Header{Name: "cloister/gramine.manifest", Mode: 0o444, Size: int64(len(gramine))}, data: gramine},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/bin/", Mode: 0o755}},
		{hdr: tar.Header{Name: strings.TrimPrefix(CoordinatorBinaryPath, "/"), Mode: 0o755, Size: bin.size}, file: bin.path, sum: &bin.sum},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "var/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(CoordinatorDataDir, "/") + "/", Mode: 0o700}},
	}
	lw, err := newLayerWriter(dir, gzipLevel)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.hdr.Typeflag == 0 {
			f.hdr.Typeflag = tar.TypeReg
		}
		f.hdr.ModTime = mtime
		f.hdr.Format = tar.FormatPAX
		if err := writeAdded(lw.tw, &f); err != nil {
			lw.abort()
			return nil, fmt.Errorf("coordinator image: adding %s: %w", f.hdr.Name, err)
		}
	}
	return lw.finish(types.OCILayer)
}

// coordinatorGramineManifest writes the Coordinator's Gramine manifest: TOML that
// gramine-sgx-sign reads as is. The enclave starts `cloister coordinator` with a fixed argv;
// the Coordinator quotes through /dev/attestation (sgx.remote_attestation = "dcap") and seals
// with the keys Gramine derives there; its state directory is an encrypted mount keyed to the
// enclave's signer; the binary and the signed enclave manifest are trusted files, so MRENCLAVE
// covers them.
func coordinatorGramineManifest(out io.Writer, m *enclave.Manifest, cfg *CoordinatorConfig, binSum, manifestSum enclave.Digest) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Gramine manifest of the Cloister Coordinator, written by `cloister image coordinator`.\n")
	w("# Sign it with the key that signed %s: gramine-sgx-sign --manifest %s --key KEY --output cloister.manifest.sgx\n",
		EnclaveManifestPath, GramineManifestPath)
	w("# Requires Gramine 1.6 or later installed at %s.\n\n", cfg.GramineLibDir)
	w("libos.entrypoint = %s\n", tomlString(CoordinatorBinaryPath))
	w("loader.entrypoint.uri = %s\n", tomlString("file:"+path.Join(cfg.GramineLibDir, "libsysdb.so")))
	w("loader.log_level = \"error\"\n")
	args := make([]string, len(m.Argv))
	for i, a := range m.Argv {
		args[i] = tomlString(a)
	}
	w("loader.argv = [%s]\n\n", strings.Join(args, ", "))
	for _, name := range m.AllowEnv {
		w("loader.env.%s = { passthrough = true }\n", tomlKey(name))
	}
	w("\nfs.root.uri = \"file:/\"\n")
	w("fs.mounts = [\n")
	w("  { type = \"tmpfs\", path = \"/tmp\" },\n")
	w("  { type = \"encrypted\", path = %s, uri = %s, key_name = %s },\n",
		tomlString(CoordinatorDataDir), tomlString("file:"+CoordinatorDataDir), tomlString(CoordinatorSealKey))
	w("]\n\n")
	w("sgx.debug = false\n")
	w("sgx.enclave_size = %s\n", tomlString(m.EnclaveSize))
	w("sgx.max_threads = %d\n", m.Threads)
	w("sgx.remote_attestation = \"dcap\"\n")
	w("sgx.isvprodid = %d\n", m.ISVProdID)
	w("sgx.isvsvn = %d\n", m.ISVSVN)
	w("sgx.file_check_policy = \"strict\"\n\n")
	w("sgx.trusted_files = [\n")
	w("  { uri = %s, sha256 = \"%s\" },\n", tomlString("file:"+EnclaveManifestPath), manifestSum)
	w("  { uri = %s, sha256 = \"%s\" },\n", tomlString("file:"+CoordinatorBinaryPath), binSum)
	w("]\n\n")
	w("# Name resolution reads these, and TLS to the Intel PCS or a PCCS the CA bundle; their content\n")
	w("# is not trusted: collateral is verified against the pinned Intel SGX root.\n")
	w("sgx.allowed_files = [\n")
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ssl/certs/ca-certificates.crt"} {
		w("  %s,\n", tomlString("file:"+f))
	}
	w("]\n")
	_, err := io.WriteString(out, b.String())
	return err
}
