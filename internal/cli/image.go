package cli

import (
	"bytes"
	"context"
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/protect"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func (a *app) newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Convert container images into confidential images, and inspect them",
		Long: `Convert unmodified container images into confidential images without any daemon, and inspect
converted images. Images are named as skopeo names them: oci:DIR[:TAG], docker-archive:FILE[:REF]
or docker://REGISTRY/REPO:TAG. See docs/convert.md.`,
	}
	cmd.AddCommand(a.newImageConvertCmd(), a.newImageInspectCmd(), a.newImageKeygenCmd(), a.newImageBenchCmd())
	return cmd
}

// imageConvertFlags are the flags of `cloister image convert`.
type imageConvertFlags struct {
	protect, exclude, allowEnv, volumes, coordMREnclave  []string
	keyName, keyFile, signKey, launcher, entrypoint, cmd string
	enclaveSize, coordMRSigner, gramineDir, pkg          string
	protectVersion                                       uint64
	isvProdID, isvSVN, coordProdID, coordMinSVN          uint16
	threads, workers                                     int
	out                                                  outputFlag
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
	fl.Uint16Var(&f.coordProdID, "coordinator-isvprodid", 0, "the Coordinator's ISVPRODID, with --coordinator-mrsigner")
	fl.Uint16Var(&f.coordMinSVN, "coordinator-min-isvsvn", 0, "the Coordinator's lowest accepted ISVSVN, with --coordinator-mrsigner")
	fl.StringVar(&f.launcher, "launcher", "", "the cloister-launch binary (default: next to cloister, then in PATH)")
	fl.StringArrayVar(&f.volumes, "encrypted-volume", nil, "a writable directory Gramine encrypts with the protected-file key (repeatable)")
	fl.StringVar(&f.gramineDir, "gramine-libdir", image.DefaultGramineLibDir, "where Gramine is installed in the image that runs this one on SGX")
	fl.StringVar(&f.pkg, "package", "", "name of the package and workload in the printed manifest entries (default: from DST)")
	fl.IntVar(&f.workers, "workers", 0, "layers read at once (default: the number of CPUs)")
	f.out.register(cmd)
	return cmd
}

// imageConvertOutput is the --output json document of `image convert`.
type imageConvertOutput struct {
	image.Report
	ManifestEntry image.Snippet `json:"manifest_entry"`
	KeyFile       string        `json:"key_file,omitempty"`
}

func (a *app) runImageConvert(cmd *cobra.Command, srcRef, dstRef string, f *imageConvertFlags) error {
	if err := f.out.validate(); err != nil {
		return err
	}
	if _, err := image.ParseReference(dstRef); err != nil {
		return err
	}
	cfg, err := a.imageConvertConfig(cmd, f)
	if err != nil {
		return err
	}
	// Layers and files are streamed; a soft limit keeps the heap well
	// inside the converter's 256 MiB budget however large the image.
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
	doc := imageConvertOutput{Report: res.Report, ManifestEntry: res.Report.Snippet(name), KeyFile: f.keyFile}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printImageConvert(w, srcRef, &doc) })
}

func printImageConvert(w io.Writer, src string, d *imageConvertOutput) {
	r := &d.Report
	fmt.Fprintf(w, "Converted %s to %s (%s).\n", src, r.Image, r.Digest)
	fmt.Fprintf(w, "  layers            %d copied, %d rewritten without protected plaintext, %d added\n",
		r.Layers.Copied, r.Layers.Rewritten, r.Layers.Added)
	fmt.Fprintf(w, "  trusted files     %d (%s)\n", r.Files, imageByteSize(r.Bytes))
	fmt.Fprintf(w, "  protected files   %d\n", len(r.ProtectedFiles))
	for _, p := range r.ProtectedFiles {
		fmt.Fprintf(w, "    %s (%d bytes, key %q, version %d)\n", p.Path, p.Size, p.Key, p.Version)
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
		if len(k.FileKeys) > 0 && d.KeyFile != "" {
			fmt.Fprintf(w, "\nAfter setting the manifest, upload the file key as a user with the write role on it:\n")
			fmt.Fprintf(w, "  cloister secret set %s --file %s\n", k.FileKeys[0], d.KeyFile)
		}
	}
}

// imageConvertConfig turns the flags into an image.Config, reading the keys and
// checking everything at once.
func (a *app) imageConvertConfig(cmd *cobra.Command, f *imageConvertFlags) (*image.Config, error) {
	cfg := &image.Config{
		Protect: f.protect, KeyName: f.keyName, ProtectVersion: f.protectVersion, Exclude: f.exclude,
		AllowEnv: f.allowEnv, ISVProdID: f.isvProdID, ISVSVN: f.isvSVN, EnclaveSize: f.enclaveSize,
		Threads: f.threads, EncryptedVolumes: f.volumes, GramineLibDir: f.gramineDir, Workers: f.workers,
	}
	var errs []error
	if f.protectVersion == 0 {
		errs = append(errs, errors.New("--protect-version: expected at least 1"))
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
	if len(f.protect) > 0 || len(f.volumes) > 0 {
		if f.keyFile == "" {
			errs = append(errs, errors.New("--protect and --encrypted-volume need --key-file (it is created when it does not exist)"))
		} else if key, err := a.loadProtectedFileKey(f.keyFile); err != nil {
			errs = append(errs, err)
		} else {
			cfg.FileKey = key
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
		if f.coordProdID != 0 || f.coordMinSVN != 0 {
			return nil, errors.New("--coordinator-isvprodid and --coordinator-min-isvsvn need --coordinator-mrsigner")
		}
		return nil, nil
	}
	c := &enclave.Coordinator{ISVProdID: f.coordProdID, MinISVSVN: f.coordMinSVN}
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

// loadProtectedFileKey reads the 32-byte protected-file key, or creates it from
// crypto/rand (0600, never overwriting) when the file does not exist, so
// that converting again reuses the key.
func (a *app) loadProtectedFileKey(path string) ([]byte, error) {
	b, err := readBounded(path, 1024)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, protect.KeySize)
		rand.Read(key)
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		_, err = fh.Write(key)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		fmt.Fprintf(a.stderr, "Created a new protected-file key in %s (keep it: the Coordinator needs it).\n", path)
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	if len(b) != protect.KeySize {
		return nil, fmt.Errorf("--key-file %s: expected %d raw bytes, found %d", path, protect.KeySize, len(b))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.stderr, "Warning: %s is readable by other users (mode %s); chmod 600 it.\n", path, fi.Mode().Perm())
	}
	return b, nil
}

// findLauncherBinary returns the launcher binary: the flag, else cloister-launch
// next to this executable, else in PATH.
func findLauncherBinary(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "cloister-launch")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("cloister-launch"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no cloister-launch binary next to cloister or in PATH; build it with `%s` and pass --launcher FILE",
		image.BuildLauncherHint)
}

func (a *app) newImageInspectCmd() *cobra.Command {
	var (
		out    outputFlag
		verify bool
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show a converted image's measurement and enclave manifest; --verify re-hashes every file",
		Long: `Read /cloister/enclave.json from a converted image, check its signature and show the image's
measurement, signer and files. With --verify, read every layer again, stack them as a container
runtime does and compare every trusted and protected file with the manifest; any difference (a
changed, missing or unmeasured file) is an error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			opts := []image.Option{image.WithKeychain(authn.DefaultKeychain)}
			src, err := image.Open(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			defer src.Close()
			var r *image.Report
			if verify {
				bar := a.imageProgressBar("verifying")
				r, err = image.Verify(ctx, src, append(opts, image.WithProgress(bar.update))...)
				bar.finish()
			} else {
				r, _, err = image.Inspect(ctx, src, opts...)
			}
			if r == nil {
				return err
			}
			doc := struct {
				*image.Report
				Verified      bool          `json:"verified"`
				ManifestEntry image.Snippet `json:"manifest_entry"`
			}{r, verify && err == nil, r.Snippet(image.PackageName(args[0]))}
			if perr := out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printImageInspect(w, args[0], r, verify && err == nil) }); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "re-hash every file from the layers and fail on any difference")
	out.register(cmd)
	return cmd
}

func printImageInspect(w io.Writer, ref string, r *image.Report, verified bool) {
	fmt.Fprintf(w, "%s", ref)
	if r.Digest != "" {
		fmt.Fprintf(w, " (%s)", r.Digest)
	}
	fmt.Fprintf(w, "\n  runs              %s\n", strings.Join(r.Argv, " "))
	fmt.Fprintf(w, "  trusted files     %d (%s)\n  protected files   %d\n", r.Files, imageByteSize(r.Bytes), len(r.ProtectedFiles))
	for _, p := range r.ProtectedFiles {
		fmt.Fprintf(w, "    %s (%d bytes, key %q, version %d)\n", p.Path, p.Size, p.Key, p.Version)
	}
	fmt.Fprintf(w, "  MRENCLAVE (sim)   %s\n  MRSIGNER          %s\n  ISVPRODID/ISVSVN  %d/%d\n  launcher SHA-256  %s\n",
		r.MREnclaveSimulation, r.MRSigner, r.ISVProdID, r.ISVSVN, r.LauncherSHA256)
	if verified {
		fmt.Fprintf(w, "  verified: every file matches the signed enclave manifest\n")
	}
}

func (a *app) newImageKeygenCmd() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create an SGX enclave signing key (RSA-3072, exponent 3) and print its MRSIGNER",
		Long: `Create an enclave signing key in FILE (PEM, mode 0600; an existing file is never overwritten)
and print its MRSIGNER. The same key signs enclave manifests (cloister image convert) and Gramine
SIGSTRUCTs (gramine-sgx-sign --key FILE).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			key, err := enclave.GenerateKey()
			if err != nil {
				return err
			}
			fh, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keygen: %w (an existing key is never overwritten)", err)
			}
			_, err = fh.Write(enclave.MarshalKey(key))
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(args[0])
				return err
			}
			mrsigner := enclave.Digest(enclave.MRSigner(&key.PublicKey)).String()
			doc := struct {
				File     string `json:"file"`
				MRSigner string `json:"mrsigner"`
			}{args[0], mrsigner}
			return out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				fmt.Fprintf(w, "Created signing key %s.\nMRSIGNER %s\n", args[0], mrsigner)
			})
		},
	}
	out.register(cmd)
	return cmd
}

// imageBenchOutput is the --output json document of `image bench`.
type imageBenchOutput struct {
	Files           int     `json:"files"`
	Bytes           int64   `json:"bytes"`
	Layers          int     `json:"layers"`
	FloorSeconds    float64 `json:"floor_seconds"`
	ConvertSeconds  float64 `json:"convert_seconds"`
	Ratio           float64 `json:"ratio"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	TargetRatio     float64 `json:"target_ratio"`
	TargetPeakBytes int64   `json:"target_peak_rss_bytes"`
	TargetsMet      bool    `json:"targets_met"`
}

func (a *app) newImageBenchCmd() *cobra.Command {
	var (
		out      outputFlag
		size     string
		dir      string
		launcher string
		keep     bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the converter against the floor (decompress and hash every byte) on a generated image",
		Long: `Generate an image of --size bytes of files (several layers, many small and some large files,
half compressible), then measure in the same run the floor, decompressing every layer and hashing
every byte, and a conversion (run as a child process, protecting one directory) with its peak
resident memory. Targets: conversion at most 1.5 times the floor, peak memory at most 256 MiB.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			n, err := parseByteSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			l, err := findLauncherBinary(launcher)
			if err != nil {
				return err
			}
			res, err := a.bench(cmd.Context(), n, dir, l, keep)
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				verdict := "met"
				if !res.TargetsMet {
					verdict = "NOT met"
				}
				fmt.Fprintf(w, "image      %d files, %s in %d layers\n", res.Files, imageByteSize(res.Bytes), res.Layers)
				fmt.Fprintf(w, "floor      %.2fs (decompress every layer, SHA-256 every byte)\n", res.FloorSeconds)
				fmt.Fprintf(w, "convert    %.2fs (%.0f MB/s)\n", res.ConvertSeconds, float64(res.Bytes)/res.ConvertSeconds/1e6)
				fmt.Fprintf(w, "ratio      %.2f (target at most %.1f)\n", res.Ratio, res.TargetRatio)
				fmt.Fprintf(w, "peak RSS   %s (target at most %s)\n", imageByteSize(res.PeakRSSBytes), imageByteSize(res.TargetPeakBytes))
				fmt.Fprintf(w, "targets    %s\n", verdict)
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "1GiB", "bytes of files in the generated image (KiB, MiB, GiB suffixes)")
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a new temporary directory)")
	cmd.Flags().StringVar(&launcher, "launcher", "", "the cloister-launch binary (default: next to cloister, then in PATH)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory")
	out.register(cmd)
	return cmd
}

// bench generates the image, measures the floor in this process and the
// conversion in a child process (for its peak memory alone).
func (a *app) bench(ctx context.Context, size int64, dir, launcher string, keep bool) (*imageBenchOutput, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "cloister-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(a.stderr, "Generating a %s image in %s ...\n", imageByteSize(size), dir)
	bi, err := image.GenerateBenchImage(dir, size, 1)
	if err != nil {
		return nil, err
	}
	key, err := enclave.GenerateKey()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "signer.pem")
	if err := os.WriteFile(keyFile, enclave.MarshalKey(key), 0o600); err != nil {
		return nil, err
	}
	src, err := image.Open(ctx, bi.Ref)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Measuring the floor ...\n")
	floor, err := image.Floor(ctx, src, 0)
	src.Close()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Converting ...\n")
	child := exec.CommandContext(ctx, exe, "image", "convert", bi.Ref, "oci:"+filepath.Join(dir, "out")+":bench",
		"--sign-key", keyFile, "--key-file", filepath.Join(dir, "file.key"), "--protect", bi.Protect,
		"--launcher", launcher, "--output", "json")
	var stderr bytes.Buffer
	child.Stdout, child.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := child.Run(); err != nil {
		return nil, fmt.Errorf("conversion: %w\n%s", err, stderr.String())
	}
	took := time.Since(start)
	var rss int64
	if ru, ok := child.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	res := &imageBenchOutput{Files: bi.Files, Bytes: bi.Bytes, Layers: bi.Layers, FloorSeconds: floor.Duration.Seconds(),
		ConvertSeconds: took.Seconds(), Ratio: took.Seconds() / floor.Duration.Seconds(), PeakRSSBytes: rss,
		TargetRatio: 1.5, TargetPeakBytes: 256 << 20}
	res.TargetsMet = res.Ratio <= res.TargetRatio && res.PeakRSSBytes <= res.TargetPeakBytes
	return res, nil
}

// parseByteSize reads "1GiB", "300MiB", "64KiB" or a number of bytes.
func parseByteSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("expected a positive size such as 1GiB or 300MiB, found %q", s)
	}
	return n * mult, nil
}

func imageByteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// imageProgress shows a progress bar on a terminal, and nothing otherwise.
type imageProgress struct {
	bar *progressbar.ProgressBar
}

// imageProgressBar returns a progress display on stderr when it is a terminal.
func (a *app) imageProgressBar(what string) *imageProgress {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &imageProgress{}
	}
	return &imageProgress{bar: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(f), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(what), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionSetPredictTime(false))}
}

func (p *imageProgress) update(s image.Progress) {
	if p.bar == nil {
		return
	}
	if s.TotalBytes > 0 && p.bar.GetMax64() != s.TotalBytes {
		p.bar.ChangeMax64(s.TotalBytes)
	}
	p.bar.Describe(fmt.Sprintf("%s: layer %d/%d, %d files", s.Phase, s.LayersDone, s.Layers, s.Files))
	_ = p.bar.Set64(s.Bytes)
}

func (p *imageProgress) describe(s string) {
	if p.bar != nil {
		p.bar.Describe(s)
	}
}

func (p *imageProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
