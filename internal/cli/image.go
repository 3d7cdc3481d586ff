package cli

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/protect"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
)

func (a *app) newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Convert container images into confidential images, and inspect them",
		Long: `Convert unmodified container images into confidential images without any daemon, and inspect
converted images. Images are named as skopeo names them: oci:DIR[:TAG], docker-archive:FILE[:REF]
or docker://REGISTRY/REPO:TAG. See docs/convert.md.`,
	}
	cmd.AddCommand(a.newImageConvertCmd(), a.newImageInspectCmd(), a.newImageKeygenCmd(), a.newImageBenchCmd(), a.newImageCoordinatorCmd())
	return cmd
}

// imageConvertFlags are the flags of `cloister image convert`.
type imageConvertFlags struct {
	protect, exclude, allowEnv, volumes, coordMREnclave  []string
	writable, tmpfs                                      []string
	keyName, keyFile, signKey, launcher, entrypoint, cmd string
	// newKey is a protected-file key made for this conversion, saved to keyFile once it succeeds.
	newKey                                      []byte
	volumeKeyName                               string
	enclaveSize, coordMRSigner, gramineDir, pkg string
	protectVersion                              uint64
	isvProdID, isvSVN, coordProdID, coordMinSVN uint16
	threads, workers                            int
	redactHistory                               bool
	out                                         outputFlag
}

func (a *app) newImageConvertCmd() *cobra.Command {
	var f imageConvertFlags
	cmd := &cobra.Command{
		Use:   "convert SRC DST",
		Short: "Convert an image into a confidential image",
		Long: `Convert the image SRC into a confidential image written to DST. Every file is measured into a
signed enclave manifest (/cloister/enclave.json), the --protect paths are encrypted and their
plaintext removed from every layer, the launcher becomes the entrypoint, and a Gramine manifest
for real SGX hardware is added. Unchanged layers are copied as they are. The same input, signing
key and file key always give the same image digest.

It prints the simulated measurement, the signer and the deployment-manifest entries to paste.`,
		Example: `  cloister image keygen signer.pem
  cloister image convert docker-archive:app.tar oci:app-confidential:1 \
      --sign-key signer.pem --protect /etc/app/secret.conf --key-file app.key`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runImageConvert(cmd, args[0], args[1], &f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.protect, "protect", nil, "encrypt this file, or every file of this directory (repeatable)")
	fl.StringVar(&f.keyName, "key-name", image.DefaultKeyName, "the deployment-manifest secret that holds the protected-file key")
	fl.StringVar(&f.keyFile, "key-file", "", "the 32-byte protected-file key; created (0600) when it does not exist")
	fl.Uint64Var(&f.protectVersion, "protect-version", 1, "version bound into the protected files (raise it to retire old copies)")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "do not measure these paths: a pattern (/var/log/*.log) or a directory ending in / (repeatable)")
	fl.StringArrayVar(&f.allowEnv, "allow-env", nil, "host environment variable the application may receive: NAME, PREFIX* or * (repeatable)")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `replace the image's Entrypoint: a JSON array ('["/bin/app","-v"]') or one program`)
	fl.StringVar(&f.cmd, "cmd", "", `replace the image's Cmd: a JSON array or one argument`)
	fl.StringVar(&f.signKey, "sign-key", "", "the enclave signing key: PEM, RSA-3072 with exponent 3 (make one with: cloister image keygen FILE)")
	fl.Uint16Var(&f.isvProdID, "isvprodid", 1, "the enclave's product ID (ISVPRODID)")
	fl.Uint16Var(&f.isvSVN, "isvsvn", 1, "the enclave's security version (ISVSVN)")
	fl.StringVar(&f.enclaveSize, "enclave-size", image.DefaultEnclaveSize, "enclave size, a power of two with K, M, G or T")
	fl.IntVar(&f.threads, "threads", image.DefaultThreads, "maximum number of enclave threads")
	fl.StringArrayVar(&f.coordMREnclave, "coordinator-mrenclave", nil, "accept a Coordinator with this MRENCLAVE (hex, repeatable)")
	fl.StringVar(&f.coordMRSigner, "coordinator-mrsigner", "", "accept a Coordinator with this MRSIGNER (hex)")
	fl.Uint16Var(&f.coordProdID, "coordinator-isvprodid", attest.CoordinatorProdID, "the Coordinator's ISVPRODID, with --coordinator-mrsigner")
	fl.Uint16Var(&f.coordMinSVN, "coordinator-min-isvsvn", 0, "the Coordinator's lowest accepted ISVSVN, with --coordinator-mrsigner")
	fl.StringVar(&f.launcher, "launcher", "", "the cloister-launch binary (default: next to cloister, then in PATH)")
	fl.StringArrayVar(&f.volumes, "encrypted-volume", nil, "a directory the app writes, which Gramine mounts encrypted; content the image has there seeds it on first start (repeatable)")
	fl.StringVar(&f.volumeKeyName, "volume-key-name", image.DefaultVolumeKeyName, "the deployment-manifest secret (a symmetric key the Coordinator generates) that holds the encrypted volumes' key")
	fl.StringArrayVar(&f.writable, "writable", nil, "a directory the app writes, left unmeasured like the image's VOLUME paths (repeatable)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "a directory kept in memory: an in-enclave tmpfs under Gramine, where delivered files can go (repeatable)")
	fl.StringVar(&f.gramineDir, "gramine-libdir", image.DefaultGramineLibDir, "where Gramine is installed in the image that runs this one on SGX")
	fl.StringVar(&f.pkg, "package", "", "name of the package and workload in the printed manifest entries (default: from DST)")
	fl.BoolVar(&f.redactHistory, "redact-history", false, "replace the build commands (created_by) of the image's history, where build arguments end up, with a fixed text")
	fl.IntVar(&f.workers, "workers", 0, "layers read at once (default: the number of CPUs)")
	f.out.register(cmd)
	return cmd
}

func (a *app) runImageConvert(cmd *cobra.Command, srcRef, dstRef string, f *imageConvertFlags) error {
	if _, err := image.ParseReference(dstRef); err != nil {
		return err
	}
	if err := image.CheckDestination(srcRef, dstRef); err != nil {
		return err
	}
	cfg, err := a.imageConvertConfig(cmd, f)
	if err != nil {
		return err
	}
	// Layers and files are streamed; a soft limit keeps the heap well
	// inside the converter's 256 MiB budget however large the files (the
	// file list itself is bounded by image.Limits, docs/convert.md).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(192 << 20))
	ctx := cmd.Context()
	opts := []image.Option{image.WithKeychain(authn.DefaultKeychain)}
	src, err := image.Open(ctx, srcRef, opts...)
	if err != nil {
		return err
	}
	defer src.Close()
	bar := a.imageProgressBar("converting")
	res, err := image.Convert(ctx, src, *cfg, append(opts, image.WithProgress(bar.update))...)
	if err != nil {
		bar.finish()
		return err
	}
	defer res.Close()
	// The image is encrypted with the new key: it is saved before the image is written, so that
	// no image exists whose key was lost.
	if f.newKey != nil {
		if err := a.saveProtectedFileKey(f.keyFile, f.newKey); err != nil {
			bar.finish()
			return err
		}
	}
	bar.describe("writing " + dstRef)
	_, err = image.Write(ctx, dstRef, res.Image, opts...)
	bar.finish()
	if err != nil {
		return err
	}
	res.Report.Image = dstRef
	name := f.pkg
	if name == "" {
		name = image.PackageName(dstRef)
	}
	doc := jsonoutput.ImageConvert{ImageReport: imageReportJSON(&res.Report), ManifestEntry: manifestEntryJSON(res.Report.Snippet(name)), KeyFile: f.keyFile}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
		for _, warning := range doc.Warnings {
			fmt.Fprintf(a.stderr, "warning: %s\n", warning)
		}
		printImageConvert(w, srcRef, &doc)
	})
}

// imageReportJSON is the --output json form of r.
func imageReportJSON(r *image.Report) jsonoutput.ImageReport {
	out := jsonoutput.ImageReport{
		Version: r.Version, Image: r.Image, Digest: r.Digest, MREnclaveSimulation: r.MREnclaveSimulation,
		MRSigner: r.MRSigner, ISVProdID: r.ISVProdID, ISVSVN: r.ISVSVN, Argv: r.Argv, Files: r.Files, Bytes: r.Bytes,
		Exclude: r.Exclude, LauncherSHA256: r.LauncherSHA256, MemoryBytes: r.MemoryBytes, Warnings: r.Warnings,
		Layers: jsonoutput.LayerCounts{Copied: r.Layers.Copied, Rewritten: r.Layers.Rewritten, Added: r.Layers.Added},
	}
	for _, u := range r.Unmeasured {
		out.Unmeasured = append(out.Unmeasured, jsonoutput.Unmeasured{Path: u.Path, Reason: u.Reason, Files: u.Files})
	}
	for _, v := range r.Volumes {
		out.Volumes = append(out.Volumes, jsonoutput.Volume{
			Path: v.Path, Key: v.Key, Seed: v.Seed, Mode: v.Mode.String(), UID: v.UID, GID: v.GID,
			SeedPath: v.SeedPath, SeedFiles: v.SeedFiles, SeedBytes: v.SeedBytes,
		})
	}
	if r.ProtectedFiles != nil {
		out.ProtectedFiles = []jsonoutput.ProtectedFile{}
	}
	for _, p := range r.ProtectedFiles {
		out.ProtectedFiles = append(out.ProtectedFiles, jsonoutput.ProtectedFile{
			Path: p.Path, Key: p.Key, Size: p.Size, SHA256: p.SHA256.String(), Version: p.Version,
			Mode: p.Mode.String(), UID: p.UID, GID: p.GID,
		})
	}
	if c := r.Coordinator; c != nil {
		out.Coordinator = &jsonoutput.CoordinatorIdentity{ISVProdID: c.ISVProdID, MinISVSVN: c.MinISVSVN}
		for _, d := range c.MRENCLAVE {
			out.Coordinator.MREnclave = append(out.Coordinator.MREnclave, d.String())
		}
		if c.MRSIGNER != (enclave.Digest{}) {
			out.Coordinator.MRSigner = c.MRSIGNER.String()
		}
	}
	return out
}

// manifestEntryJSON is the --output json form of s.
func manifestEntryJSON(s image.Snippet) jsonoutput.ManifestEntry {
	out := jsonoutput.ManifestEntry{Packages: map[string]jsonoutput.ManifestPackage{}, Workloads: map[string]jsonoutput.ManifestWorkload{}}
	for name, p := range s.Packages {
		out.Packages[name] = jsonoutput.ManifestPackage{MRSigner: p.MRSigner, ISVProdID: p.ISVProdID, MinISVSVN: p.MinISVSVN}
	}
	for name, w := range s.Workloads {
		out.Workloads[name] = jsonoutput.ManifestWorkload{Package: w.Package, FileKeys: w.FileKeys}
	}
	if s.Secrets != nil {
		out.Secrets = map[string]jsonoutput.ManifestSecret{}
	}
	for name, sec := range s.Secrets {
		out.Secrets[name] = jsonoutput.ManifestSecret{Type: sec.Type, Size: sec.Size}
	}
	return out
}

func printImageConvert(w io.Writer, src string, d *jsonoutput.ImageConvert) {
	r := &d.ImageReport
	fmt.Fprintf(w, "Converted %s to %s (%s).\n", src, r.Image, r.Digest)
	fmt.Fprintf(w, "  layers            %d copied, %d rewritten without protected plaintext, %d added\n",
		r.Layers.Copied, r.Layers.Rewritten, r.Layers.Added)
	fmt.Fprintf(w, "  trusted files     %d (%s)\n", r.Files, imageByteSize(r.Bytes))
	fmt.Fprintf(w, "  protected files   %d\n", len(r.ProtectedFiles))
	for _, p := range r.ProtectedFiles {
		fmt.Fprintf(w, "    %s (%d bytes, mode %s, owner %d:%d, key %q, version %d)\n", p.Path, p.Size, p.Mode, p.UID, p.GID, p.Key, p.Version)
	}
	printVolumes(w, r)
	if len(r.ProtectedFiles) > 0 {
		fmt.Fprintf(w, "  memory            %s\n", image.MemoryNote(r.MemoryBytes))
	}
	fmt.Fprintf(w, "  runs              %s\n", strings.Join(r.Argv, " "))
	fmt.Fprintf(w, "  MRENCLAVE (sim)   %s\n", r.MREnclaveSimulation)
	fmt.Fprintf(w, "  MRSIGNER          %s\n", r.MRSigner)
	fmt.Fprintf(w, "  ISVPRODID/ISVSVN  %d/%d\n", r.ISVProdID, r.ISVSVN)
	if r.Coordinator == nil {
		fmt.Fprintf(w, "  Coordinator       the simulated Coordinator only (give --coordinator-mrenclave or --coordinator-mrsigner for SGX)\n")
	}
	snippet, _ := json.MarshalIndent(d.ManifestEntry, "  ", "  ")
	fmt.Fprintf(w, "\nDeployment-manifest entries to merge into yours:\n  %s\n", snippet)
	for _, k := range d.ManifestEntry.Workloads {
		for _, key := range k.FileKeys {
			if d.KeyFile != "" && d.ManifestEntry.Secrets[key].Type == image.SecretUserDefined {
				fmt.Fprintf(w, "\nAfter setting the manifest, upload the file key as a user with the write role on it:\n")
				fmt.Fprintf(w, "  cloister secret set %s --file %s -c HOST:PORT --cert USER.pem --key USER.key\n", key, d.KeyFile)
			}
		}
	}
}

// printVolumes prints the encrypted volumes and the unmeasured directories of r.
func printVolumes(w io.Writer, r *jsonoutput.ImageReport) {
	if len(r.Volumes) > 0 {
		fmt.Fprintf(w, "  encrypted volumes %d (in simulation not encrypted)\n", len(r.Volumes))
	}
	for _, v := range r.Volumes {
		fmt.Fprintf(w, "    %s (key %q, mode %s, owner %d:%d", v.Path, v.Key, v.Mode, v.UID, v.GID)
		if v.Seed {
			fmt.Fprintf(w, ", seeded on first start from %d files (%s) at %s, which are measured, not encrypted", v.SeedFiles, imageByteSize(v.SeedBytes), v.SeedPath)
		}
		fmt.Fprintf(w, ")\n")
	}
	if len(r.Unmeasured) > 0 {
		fmt.Fprintf(w, "  unmeasured        %d directories the app writes (their content stays in the image, not measured)\n", len(r.Unmeasured))
	}
	for _, u := range r.Unmeasured {
		fmt.Fprintf(w, "    %s (%s, %d files)\n", u.Path, u.Reason, u.Files)
	}
}

// checkWorkloadProdID refuses the Coordinator's product ID for a workload: with the same
// signing key such a workload would derive the Coordinator's sealing key and match a
// signer-based pin of the Coordinator.
func checkWorkloadProdID(id uint16) error {
	if id == attest.CoordinatorProdID {
		return fmt.Errorf("--isvprodid %d is the Coordinator's product ID; a workload signed with the Coordinator's key and it could unseal the Coordinator's state and pass for it: choose another (and sign workloads with another key)", id)
	}
	return nil
}

// imageConvertConfig turns the flags into an image.Config, reading the keys and
// checking everything at once.
func (a *app) imageConvertConfig(cmd *cobra.Command, f *imageConvertFlags) (*image.Config, error) {
	cfg := &image.Config{
		Protect: f.protect, KeyName: f.keyName, ProtectVersion: f.protectVersion, Exclude: f.exclude,
		AllowEnv: f.allowEnv, ISVProdID: f.isvProdID, ISVSVN: f.isvSVN, EnclaveSize: f.enclaveSize,
		Threads: f.threads, EncryptedVolumes: f.volumes, GramineLibDir: f.gramineDir, Workers: f.workers,
		RedactHistory: f.redactHistory, Writable: f.writable, Tmpfs: f.tmpfs, VolumeKeyName: f.volumeKeyName,
	}
	var errs []error
	if f.protectVersion == 0 {
		errs = append(errs, errors.New("--protect-version: expected at least 1"))
	}
	if err := checkWorkloadProdID(f.isvProdID); err != nil {
		errs = append(errs, err)
	}
	for _, o := range []struct {
		flag, val string
		dst       **[]string
	}{{"entrypoint", f.entrypoint, &cfg.Entrypoint}, {"cmd", f.cmd, &cfg.Cmd}} {
		if !cmd.Flags().Changed(o.flag) {
			continue
		}
		argv, err := parseArgvFlag(o.val)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", o.flag, err))
		}
		*o.dst = &argv
	}
	if c, err := coordinatorFlagIdentity(f); err != nil {
		errs = append(errs, err)
	} else {
		cfg.Coordinator = c
	}
	if f.signKey == "" {
		errs = append(errs, errors.New("--sign-key is required (make one with `cloister image keygen FILE`)"))
	} else if b, err := readBounded(f.signKey, 64<<10); err != nil {
		errs = append(errs, fmt.Errorf("--sign-key: %w", err))
	} else if cfg.SignKey, err = enclave.ParseKey(b); err != nil {
		errs = append(errs, fmt.Errorf("--sign-key %s: %w", f.signKey, err))
	}
	if len(f.protect) > 0 {
		if f.keyFile == "" {
			errs = append(errs, errors.New("--protect needs --key-file (it is created when it does not exist)"))
		} else if key, created, err := a.loadProtectedFileKey(f.keyFile); err != nil {
			errs = append(errs, err)
		} else {
			cfg.FileKey = key
			if created {
				f.newKey = key
			}
		}
	}
	l, err := findLauncherBinary(f.launcher)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Launcher = l
	return cfg, errors.Join(errs...)
}

// parseArgvFlag reads a JSON array of strings, or takes s as one element.
func parseArgvFlag(s string) ([]string, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "[") {
		return []string{s}, nil
	}
	var argv []string
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&argv); err != nil || dec.More() {
		return nil, fmt.Errorf("expected a JSON array of strings such as [\"/bin/app\", \"-v\"], found %q", s)
	}
	return argv, nil
}

func coordinatorFlagIdentity(f *imageConvertFlags) (*enclave.Coordinator, error) {
	if len(f.coordMREnclave) == 0 && f.coordMRSigner == "" {
		if f.coordProdID != attest.CoordinatorProdID || f.coordMinSVN != 0 {
			return nil, errors.New("--coordinator-isvprodid and --coordinator-min-isvsvn need --coordinator-mrsigner")
		}
		return nil, nil
	}
	if f.coordMRSigner == "" && (f.coordProdID != attest.CoordinatorProdID || f.coordMinSVN != 0) {
		return nil, errors.New("--coordinator-isvprodid and --coordinator-min-isvsvn need --coordinator-mrsigner")
	}
	c := &enclave.Coordinator{}
	if f.coordMRSigner != "" { // product and SVN qualify a signer; with MRENCLAVE alone they mean nothing
		c.ISVProdID, c.MinISVSVN = f.coordProdID, f.coordMinSVN
	}
	for _, h := range f.coordMREnclave {
		var d enclave.Digest
		if err := d.UnmarshalText([]byte(strings.ToLower(h))); err != nil {
			return nil, fmt.Errorf("--coordinator-mrenclave %q: %w", h, err)
		}
		c.MRENCLAVE = append(c.MRENCLAVE, d)
	}
	if f.coordMRSigner != "" {
		if err := c.MRSIGNER.UnmarshalText([]byte(strings.ToLower(f.coordMRSigner))); err != nil {
			return nil, fmt.Errorf("--coordinator-mrsigner %q: %w", f.coordMRSigner, err)
		}
	}
	return c, nil
}

// loadProtectedFileKey reads the 32-byte protected-file key, or makes a new one from
// crypto/rand when the file does not exist (created true). The new key is saved by
// saveProtectedFileKey only once the conversion has succeeded, so a refused conversion leaves
// no key file behind; converting again reuses the saved key.
func (a *app) loadProtectedFileKey(path string) (key []byte, created bool, err error) {
	b, err := readBounded(path, 1024)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, protect.KeySize)
		rand.Read(key)
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("--key-file: %w", err)
	}
	if len(b) != protect.KeySize {
		return nil, false, fmt.Errorf("--key-file %s: expected %d raw bytes, found %d", path, protect.KeySize, len(b))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.stderr, "Warning: %s is readable by other users (mode %s); chmod 600 it.\n", path, fi.Mode().Perm())
	}
	return b, false, nil
}

// saveProtectedFileKey writes a key made by loadProtectedFileKey (0600, never overwriting).
func (a *app) saveProtectedFileKey(path string, key []byte) error {
	if err := createExclusive(path, key, 0o600); err != nil {
		return fmt.Errorf("--key-file: %w", err)
	}
	fmt.Fprintf(a.stderr, "Created a new protected-file key in %s (keep it: the Coordinator needs it).\n", path)
	return nil
}

// findLauncherBinary returns the launcher binary: the flag, else cloister-launch (see [findBinary]).
func findLauncherBinary(flag string) (string, error) {
	return findBinary(flag, "cloister-launch", "--launcher", image.BuildLauncherHint)
}

// findBinary returns the companion binary name of cloister: the flag's value if given, else
// name next to this executable, else name in PATH. The error says how to build it (hint) and
// which flag (flagName) takes it.
func findBinary(flag, name, flagName, hint string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary next to cloister or in PATH; build it with `%s` and pass %s FILE", name, hint, flagName)
}
