package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/spf13/cobra"
)

func (a *app) newEnclaveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enclave",
		Short: "Make enclave manifests for host programs run with cloister launch",
	}
	cmd.AddCommand(a.newEnclaveSignCmd())
	return cmd
}

// enclaveSignFlags are the flags of `cloister enclave sign`.
type enclaveSignFlags struct {
	manifest, signKey, user, workDir, launcher string
	files, env, allowEnv                       []string
	isvProdID, isvSVN                          uint16
	coord                                      imageConvertFlags // the --coordinator-* flags only
	out                                        outputFlag
}

func (a *app) newEnclaveSignCmd() *cobra.Command {
	var f enclaveSignFlags
	cmd := &cobra.Command{
		Use:   "sign --sign-key KEY --manifest FILE [flags] -- PROGRAM [ARG...]",
		Short: "Sign an enclave manifest for a host program run with cloister launch",
		Long: `Write a signed enclave manifest for PROGRAM and its arguments, run on this host by
` + "`cloister launch`" + ` (point CLOISTER_ENCLAVE_MANIFEST at it). Every --file is measured: a regular file,
or every regular file below a directory. PROGRAM itself is measured too (found in PATH when it
has no slash). A symbolic link is listed at its own path and at its resolved target, both with
the target's content, so the launcher's check of trusted files passes as long as the link leads
to the same content.

The manifest is signed like ` + "`cloister image convert`" + ` signs (a key from ` + "`cloister image keygen`" + `). The
command prints the MRENCLAVE that ` + "`cloister launch`" + ` reports with it in simulation, which a
deployment-manifest package admits with "mrenclave"; and the MRSIGNER, for "mrsigner". The
manifest records the launcher (this cloister, or --launcher): in simulation another launcher,
such as a cloister built from other source or with another toolchain or flags, refuses to run
it, so sign again after such a rebuild.

Protected files are not supported for host programs: a protected path must be a link into
/dev/shm/cloister-protected, which would change the host's own files, and the plaintext would
outlive the program in the host's /dev/shm. Deliver secrets as files from the Coordinator
instead (the workload's "files").`,
		Example: `  cloister image keygen signer.pem
  cloister enclave sign --sign-key signer.pem --manifest hello.enclave.json \
      --file /etc/hello.conf --env GREETING=hi --allow-env 'LC_*' -- /usr/bin/env`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runEnclaveSign(cmd, args, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.manifest, "manifest", "", "the signed enclave manifest file to write (required)")
	fl.StringVar(&f.signKey, "sign-key", "", "the enclave signing key: PEM, RSA-3072 with exponent 3 (make one with: cloister image keygen FILE)")
	fl.StringArrayVar(&f.files, "file", nil, "a trusted file, or a directory whose files are all trusted (repeatable)")
	fl.StringArrayVar(&f.env, "env", nil, "a fixed environment variable of the program, NAME=VALUE (repeatable)")
	fl.StringArrayVar(&f.allowEnv, "allow-env", nil, "host environment variable the program may receive: NAME, PREFIX* or * (repeatable)")
	fl.StringVar(&f.user, "user", "", `the user to run the program as ("name", "uid", "name:group" or "uid:gid"); when the launcher runs as root`)
	fl.StringVar(&f.workDir, "workdir", "", "the program's working directory (default /)")
	fl.Uint16Var(&f.isvProdID, "isvprodid", 1, "the enclave's product ID (ISVPRODID)")
	fl.Uint16Var(&f.isvSVN, "isvsvn", 1, "the enclave's security version (ISVSVN)")
	fl.StringVar(&f.launcher, "launcher", "", "the launcher binary the manifest is for, recorded in it: in simulation no other launcher runs it (default: this cloister, which runs `cloister launch`)")
	fl.StringArrayVar(&f.coord.coordMREnclave, "coordinator-mrenclave", nil, "accept a Coordinator with this MRENCLAVE (hex, repeatable)")
	fl.StringVar(&f.coord.coordMRSigner, "coordinator-mrsigner", "", "accept a Coordinator with this MRSIGNER (hex)")
	fl.Uint16Var(&f.coord.coordProdID, "coordinator-isvprodid", attest.CoordinatorProdID, "the Coordinator's ISVPRODID, with --coordinator-mrsigner")
	fl.Uint16Var(&f.coord.coordMinSVN, "coordinator-min-isvsvn", 0, "the Coordinator's lowest accepted ISVSVN, with --coordinator-mrsigner")
	f.out.register(cmd)
	return cmd
}

// enclaveManifest turns the flags and argv into an enclave manifest for the launcher binary at
// launcher, signed, checking the flags all at once before it reads the launcher and the
// trusted files.
func (f *enclaveSignFlags) enclaveManifest(argv []string, launcher string) (*enclave.Manifest, *enclave.Signed, []enclave.Link, []byte, error) {
	var errs []error
	if err := checkWorkloadProdID(f.isvProdID); err != nil {
		errs = append(errs, err)
	}
	m := &enclave.Manifest{Version: enclave.FormatVersion, ISVProdID: f.isvProdID, ISVSVN: f.isvSVN, Argv: argv,
		AllowEnv: f.allowEnv, User: f.user}
	if f.manifest == "" {
		errs = append(errs, errors.New("--manifest is required: the file to write the signed enclave manifest to"))
	}
	if f.workDir != "" {
		wd, err := filepath.Abs(f.workDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("--workdir: %w", err))
		}
		m.WorkingDir = wd
	}
	for _, kv := range f.env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("--env %q: expected NAME=VALUE", kv))
			continue
		}
		if m.Env == nil {
			m.Env = map[string]string{}
		}
		m.Env[name] = value
	}
	if c, err := coordinatorFlagIdentity(&f.coord); err != nil {
		errs = append(errs, err)
	} else {
		if c != nil && c.MRSIGNER.IsZero() {
			// The --coordinator-isvprodid default goes with --coordinator-mrsigner only.
			c.ISVProdID, c.MinISVSVN = 0, 0
		}
		m.Coordinator = c
	}
	var key []byte
	if f.signKey == "" {
		errs = append(errs, errors.New("--sign-key is required (make one with `cloister image keygen FILE`)"))
	} else if b, err := readBounded(f.signKey, 64<<10); err != nil {
		errs = append(errs, fmt.Errorf("--sign-key: %w", err))
	} else {
		key = b
	}
	// The program itself is trusted: resolved as the launcher resolves it, with PATH from
	// the manifest's environment or else the host's.
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		path := os.Getenv("PATH")
		if p, ok := m.Env["PATH"]; ok {
			path = p
		}
		found := ""
		for _, dir := range filepath.SplitList(path) {
			if p := filepath.Join(dir, prog); isExecutable(p) {
				found = p
				break
			}
		}
		if found == "" {
			errs = append(errs, fmt.Errorf("program %q not found in PATH %s", prog, path))
		}
		prog = found
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, nil, nil, usageError(err)
	}
	rec, err := image.DescribeLauncher(launcher)
	if err != nil {
		if f.launcher == "" {
			return nil, nil, nil, nil, fmt.Errorf("the launcher, this cloister: %w; pass --launcher FILE", err)
		}
		return nil, nil, nil, nil, fmt.Errorf("--launcher: %w", err)
	}
	m.Launcher = rec
	files, links, err := enclave.HostFiles(append([]string{prog}, f.files...))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("trusted files: %w", err)
	}
	m.Files = files
	sk, err := enclave.ParseKey(key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("--sign-key %s: %w", f.signKey, err)
	}
	raw, err := enclave.Sign(m, sk)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	s, err := enclave.Parse(raw)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("reading back the signed enclave manifest: %w", err)
	}
	return m, s, links, raw, nil
}

// isExecutable reports whether p is a regular file with an execute bit, as execvp wants.
func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func (a *app) runEnclaveSign(cmd *cobra.Command, argv []string, f *enclaveSignFlags) error {
	launcher := f.launcher
	if launcher == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this executable: %w; pass --launcher FILE", err)
		}
		launcher = exe
	}
	m, s, links, raw, err := f.enclaveManifest(argv, launcher)
	if err != nil {
		return err
	}
	lsum := m.Launcher.SHA256
	if err := atomicfile.Write(f.manifest, raw, 0o644); err != nil {
		return fmt.Errorf("--manifest: %w", err)
	}
	mr := enclave.SimMRENCLAVE(lsum, s.Raw)
	signer := s.MRSigner()
	doc := jsonoutput.EnclaveSign{
		Manifest: f.manifest, MREnclaveSimulation: fmt.Sprintf("%x", mr), MRSigner: fmt.Sprintf("%x", signer),
		ISVProdID: m.ISVProdID, ISVSVN: m.ISVSVN, Argv: m.Argv, Files: len(m.Files), Links: []jsonoutput.EnclaveLink{},
		LauncherSHA256: fmt.Sprintf("%x", lsum),
	}
	for _, fl := range m.Files {
		doc.Bytes += fl.Size
	}
	for _, l := range links {
		doc.Links = append(doc.Links, jsonoutput.EnclaveLink{Path: l.Path, Target: l.Target})
	}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printEnclaveSign(w, launcher, &doc) })
}

func printEnclaveSign(w io.Writer, launcher string, d *jsonoutput.EnclaveSign) {
	fmt.Fprintf(w, "Signed the enclave manifest %s.\n", d.Manifest)
	fmt.Fprintf(w, "  runs              %s\n", strings.Join(d.Argv, " "))
	fmt.Fprintf(w, "  trusted files     %d (%s)\n", d.Files, imageByteSize(d.Bytes))
	for _, l := range d.Links {
		fmt.Fprintf(w, "    link %s -> %s (both listed)\n", l.Path, l.Target)
	}
	fmt.Fprintf(w, "  MRENCLAVE (sim)   %s (with launcher %s)\n", d.MREnclaveSimulation, launcher)
	fmt.Fprintf(w, "  MRSIGNER          %s\n", d.MRSigner)
	fmt.Fprintf(w, "  ISVPRODID/ISVSVN  %d/%d\n", d.ISVProdID, d.ISVSVN)
	fmt.Fprintf(w, "\nA deployment-manifest package that admits exactly this program:\n")
	fmt.Fprintf(w, "  \"packages\": {\"NAME\": {\"mrenclave\": %q}}\n", d.MREnclaveSimulation)
	fmt.Fprintf(w, "Run it:\n  CLOISTER_ENCLAVE_MANIFEST=%s CLOISTER_COORDINATOR=HOST:2001 CLOISTER_WORKLOAD=NAME CLOISTER_SIM_DIR=DIR cloister launch\n", d.Manifest)
}
