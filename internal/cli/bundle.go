package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/spf13/cobra"
)

func (a *app) newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Check offline evidence about a Coordinator",
	}
	cmd.AddCommand(a.newBundleVerifyCmd())
	return cmd
}

// bundleVerifyFlags are the flags of `cloister bundle verify`.
type bundleVerifyFlags struct {
	expect   verifyFlags // the expected Coordinator (conn and pin flags unused)
	out      outputFlag
	at       string
	manifest string
	audit    string
}

func (a *app) newBundleVerifyCmd() *cobra.Command {
	var f bundleVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify an evidence bundle offline, at a past instant if need be",
		Long: `Verify an evidence bundle written by "cloister verify --bundle FILE", with no network access, and
report each check:

  certificates   the Coordinator's TLS certificate was issued by the deployment root
  quote          the quote is a genuine SGX quote, by its collateral (TCB Info, QE Identity, CRLs)
  policy         the quote is of the expected Coordinator enclave (--mrenclave, --mrsigner, ...)
                 on an accepted platform (TCB status, debug bit, collateral valid at --at)
  audit_head     the audit log head is signed by the deployment root
  report_data    the quote binds the Coordinator's TLS key, the bundle's nonce and that head
  manifest_file  with --manifest FILE: the bundle's manifest digest is the file's SHA-256
  audit_log      with --audit EXPORT: the exported log verifies, extends the head, and its last
                 manifest entry before the head names the bundle's manifest (quote → head →
                 log → manifest: the manifest is then proven, not just reported)

Everything is checked at --at (default: when the bundle was made), so an auditor can check a
deployment at a past instant with the collateral that was current then. The exit status is 0
when no check failed.`,
		Example: `  cloister verify --simulation sgx-sim --bundle evidence.json
  cloister bundle verify evidence.json --simulation sgx-sim --audit audit.jsonl --manifest manifest.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runBundleVerify(cmd, args[0], &f) },
	}
	f.expect.registerExpect(cmd)
	f.out.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.at, "at", "", "verification instant, RFC 3339 (default: when the bundle was made)")
	fl.StringVar(&f.manifest, "manifest", "", "a manifest file the bundle's manifest digest must match")
	fl.StringVar(&f.audit, "audit", "", "an audit log export (cloister audit log --export) that proves the bundle's manifest")
	return cmd
}

func (a *app) runBundleVerify(cmd *cobra.Command, file string, f *bundleVerifyFlags) error {
	e, err := f.expect.expect()
	if err != nil {
		return usageError(err)
	}
	if err := f.expect.requireIdentity(e); err != nil {
		return err
	}
	var opts client.BundleOptions
	if f.at != "" {
		if opts.At, err = time.Parse(time.RFC3339, f.at); err != nil {
			return usageError(fmt.Errorf("--at %q: expected an RFC 3339 time such as 2026-12-01T00:00:00Z", f.at))
		}
	}
	if f.manifest != "" {
		if opts.Manifest, err = readBounded(f.manifest, 8<<20); err != nil {
			return fmt.Errorf("--manifest: %w", err)
		}
	}
	if f.audit != "" {
		in, err := os.Open(f.audit)
		if err != nil {
			return fmt.Errorf("--audit: %w", err)
		}
		defer in.Close()
		opts.Audit = in
	}
	b, err := readBundle(file)
	if err != nil {
		return err
	}
	rep := b.Verify(e, opts)
	out := jsonoutput.BundleVerify{
		Verified: rep.OK(), At: rep.At.Format(time.RFC3339), Coordinator: b.Coordinator,
		MadeAt: b.VerifiedAt.UTC().Format(time.RFC3339), Checks: []jsonoutput.BundleCheck{},
		ManifestVersion: b.ManifestVersion, ManifestDigest: b.ManifestDigest,
		AuditHead: auditHeadJSON(b.Response.AuditHead), Simulation: b.Response.Simulation,
	}
	for _, c := range rep.Checks {
		out.Checks = append(out.Checks, jsonoutput.BundleCheck{Name: c.Name, Result: c.Result, Detail: c.Detail})
	}
	if v := rep.Verified; v != nil {
		out.MREnclave = hex.EncodeToString(v.Result.Enclave.MREnclave[:])
		out.MRSigner = hex.EncodeToString(v.Result.Enclave.MRSigner[:])
	}
	err = f.out.print(cmd.OutOrStdout(), out, func(w io.Writer) {
		verdict := "verified"
		if !out.Verified {
			verdict = "NOT verified"
		}
		fmt.Fprintf(w, "Bundle %s (Coordinator %s, made %s) %s at %s\n", file, out.Coordinator, out.MadeAt, verdict, out.At)
		if out.Simulation {
			fmt.Fprintln(w, "  WARNING: the Coordinator ran in SIMULATION mode: its evidence proves nothing about confidentiality.")
		}
		for _, c := range out.Checks {
			fmt.Fprintf(w, "  %-7s %-14s %s\n", c.Result, c.Name, c.Detail)
		}
		if out.ManifestDigest != "" {
			fmt.Fprintf(w, "  manifest version %d, SHA-256 %s\n", out.ManifestVersion, out.ManifestDigest)
		}
	})
	if err != nil {
		return err
	}
	if !out.Verified {
		return &exitError{code: 1, msg: "bundle NOT verified: " + rep.Err().Error()}
	}
	return nil
}
