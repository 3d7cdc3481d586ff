package cli

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/spf13/cobra"
)

// verifyFlags are the flags of `cloister verify`.
type verifyFlags struct {
	conn         connFlags
	out          outputFlag
	simulation   string
	sgxRoot      string
	mrenclave    []string
	mrsigner     string
	isvprodid    uint16
	minISVSVN    uint16
	allowDebug   bool
	tcbStatuses  []string
	allowExpired bool
	bundle       string
	fromBundle   string
	replacePin   bool
	acceptAny    bool
}

func (a *app) newVerifyCmd() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify a Coordinator by remote attestation and pin its deployment root",
		Long: `Verify a Coordinator: fetch its quote over a fresh nonce, check that it is genuine (its PCK chain
ends at Intel's SGX root, or at a simulated platform's root with --simulation), fresh, bound to the
TLS key of this connection, and from the expected Coordinator enclave (--mrenclave, or --mrsigner
with --isvprodid and --min-isvsvn). Then pin the deployment's root certificate: later commands
trust only a Coordinator certificate issued by that root, and fail if it changes.

The Coordinator's quote also binds the head of its audit log, signed by the deployment root; it
is printed and saved beside the pinned root, and "cloister audit log" later requires the log to
extend it.

--bundle FILE also writes the evidence (the Coordinator's answer with its quote, collateral and
audit head, and the manifest it reports), which "cloister bundle verify FILE" checks again
offline, for an auditor who was not there; --from-bundle FILE does the same with verify's flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runVerify(cmd, &f) },
	}
	a.registerConnFlags(cmd, &f.conn)
	f.out.register(cmd)
	f.registerExpect(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.bundle, "bundle", "", "write an offline verification bundle to this file")
	fl.StringVar(&f.fromBundle, "from-bundle", "", "verify a bundle written by --bundle instead of contacting the Coordinator")
	fl.BoolVar(&f.replacePin, "replace-pin", false, "replace a pinned root that differs (a new deployment)")
	return cmd
}

// registerExpect registers the flags that say which Coordinator is expected.
func (f *verifyFlags) registerExpect(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.simulation, "simulation", "", "trust the simulated SGX platform in this directory (NOT secure) instead of Intel's root")
	fl.StringVar(&f.sgxRoot, "sgx-root", "", "PEM certificate whose key is the trusted SGX root (default: Intel SGX Root CA)")
	fl.StringSliceVar(&f.mrenclave, "mrenclave", nil, "expected Coordinator MRENCLAVE, hex (repeatable)")
	fl.StringVar(&f.mrsigner, "mrsigner", "", "expected Coordinator MRSIGNER, hex")
	fl.Uint16Var(&f.isvprodid, "isvprodid", attest.CoordinatorProdID, "expected Coordinator ISVPRODID (with --mrsigner)")
	fl.Uint16Var(&f.minISVSVN, "min-isvsvn", 0, "lowest accepted Coordinator ISVSVN (with --mrsigner)")
	fl.BoolVar(&f.allowDebug, "allow-debug", false, "accept a debug Coordinator enclave (its memory is readable by the host)")
	fl.StringSliceVar(&f.tcbStatuses, "accept-tcb-status", nil, "accepted TCB statuses (default UpToDate, SWHardeningNeeded)")
	fl.BoolVar(&f.allowExpired, "allow-expired-collateral", false, "accept collateral past its next update")
	fl.BoolVar(&f.acceptAny, "insecure-accept-any-enclave", false, "accept and pin any genuine enclave; compare the printed MRENCLAVE yourself")
}

func (f *verifyFlags) expect() (client.Expect, error) {
	var e client.Expect
	var errs []error
	switch {
	case f.simulation != "" && f.sgxRoot != "":
		errs = append(errs, errors.New("--simulation and --sgx-root exclude each other"))
	case f.simulation != "":
		p, err := sim.Load(f.simulation)
		if err != nil {
			errs = append(errs, fmt.Errorf("--simulation: %w", err))
		} else {
			e.SGXRoot = p.Root()
		}
	case f.sgxRoot != "":
		b, err := readBounded(f.sgxRoot, 64<<10)
		if err == nil {
			var certs []*x509.Certificate
			certs, err = pki.ParseCertsPEM(b)
			if err == nil {
				e.SGXRoot = certs[0]
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--sgx-root: %w", err))
		}
	default:
		e.SGXRoot = verify.IntelRoot()
	}
	for _, h := range f.mrenclave {
		d, err := parseDigest(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("--mrenclave: %w", err))
		}
		e.MREnclave = append(e.MREnclave, d)
	}
	if f.mrsigner != "" {
		d, err := parseDigest(f.mrsigner)
		if err != nil {
			errs = append(errs, fmt.Errorf("--mrsigner: %w", err))
		}
		e.MRSigner = &d
		e.ISVProdID, e.MinISVSVN = f.isvprodid, f.minISVSVN
	} else if f.simulation != "" && len(e.MREnclave) == 0 {
		// A simulated Coordinator has a fixed, obviously fake signer.
		e.MRSigner = &attest.SimCoordinatorSigner
		e.ISVProdID = attest.CoordinatorProdID
	}
	for _, s := range f.tcbStatuses {
		st, err := verify.ParseTCBStatus(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--accept-tcb-status: %w", err))
		}
		e.TCBStatuses = append(e.TCBStatuses, st)
	}
	e.AllowDebug, e.AllowExpiredCollateral = f.allowDebug, f.allowExpired
	return e, errors.Join(errs...)
}

func parseDigest(h string) ([32]byte, error) {
	var d [32]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return d, fmt.Errorf("%q: expected 64 hex digits", h)
	}
	copy(d[:], b)
	return d, nil
}

// requireIdentity refuses an Expect without an identity unless --insecure-accept-any-enclave.
func (f *verifyFlags) requireIdentity(e client.Expect) error {
	if len(e.MREnclave) == 0 && e.MRSigner == nil && !f.acceptAny {
		// Anyone can run some genuine enclave; only the expected identity makes it the
		// Coordinator. Pinning without one would trust whoever answered.
		return usageError(errors.New("no expected Coordinator identity: give --mrenclave, or --mrsigner with --isvprodid and --min-isvsvn; or --insecure-accept-any-enclave to accept whatever genuine enclave answers"))
	}
	return nil
}

func (a *app) runVerify(cmd *cobra.Command, f *verifyFlags) error {
	e, err := f.expect()
	if err != nil {
		return err
	}
	if err := f.requireIdentity(e); err != nil {
		return err
	}
	var v *client.Verified
	if f.fromBundle != "" {
		v, err = verifyBundle(f.fromBundle, e)
	} else {
		v, err = client.Verify(cmd.Context(), f.conn.addr, e)
	}
	if err != nil {
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator NOT verified: %w", err))
	}
	out := jsonoutput.Verify{
		Coordinator:      f.conn.addr,
		Verified:         true,
		Simulation:       v.Response.Simulation,
		IdentityChecked:  v.IdentityChecked,
		MREnclave:        hex.EncodeToString(v.Result.Enclave.MREnclave[:]),
		MRSigner:         hex.EncodeToString(v.Result.Enclave.MRSigner[:]),
		ISVProdID:        v.Result.Enclave.ISVProdID,
		ISVSVN:           v.Result.Enclave.ISVSVN,
		TCBStatus:        string(v.Result.Platform.TCBStatus),
		AdvisoryIDs:      append([]string{}, v.Result.Platform.AdvisoryIDs...),
		CollateralExpiry: v.Result.Platform.CollateralExpiry.UTC().Format(time.RFC3339),
		RootFingerprint:  fingerprint(v.Root),
		AuditHead:        auditHeadJSON(v.AuditHead),
	}
	if f.fromBundle == "" {
		if out.PinnedAt, err = a.pin(&f.conn, v.Root, f.replacePin); err != nil {
			return err
		}
		st, err := client.New(f.conn.addr, v.Root).Status(cmd.Context())
		if err != nil {
			return fmt.Errorf("read the verified Coordinator's state version: %w", err)
		}
		if err := a.checkSeenState(&f.conn, v.Root, st); err != nil {
			return err
		}
		if err := a.saveSeenHead(&f.conn, v.Root, v.AuditHead); err != nil {
			return err
		}
		if f.bundle != "" {
			if err := writeBundle(cmd.Context(), f.bundle, f.conn.addr, v); err != nil {
				return fmt.Errorf("--bundle: %w", err)
			}
		}
	}
	return f.out.print(cmd.OutOrStdout(), out, func(w io.Writer) { printVerified(w, &out) })
}

func printVerified(w io.Writer, o *jsonoutput.Verify) {
	fmt.Fprintf(w, "Coordinator %s verified.\n", o.Coordinator)
	if o.Simulation {
		fmt.Fprintln(w, "  WARNING: it runs in SIMULATION mode: its evidence proves nothing about confidentiality.")
	}
	fmt.Fprintf(w, "  MRENCLAVE    %s\n  MRSIGNER     %s\n  ISVPRODID    %d  ISVSVN %d\n", o.MREnclave, o.MRSigner, o.ISVProdID, o.ISVSVN)
	fmt.Fprintf(w, "  TCB status   %s %s\n", o.TCBStatus, strings.Join(o.AdvisoryIDs, " "))
	fmt.Fprintf(w, "  root SHA-256 %s\n", o.RootFingerprint)
	fmt.Fprintf(w, "  audit head   entry %d, hash %s, signed %s\n", o.AuditHead.Seq, o.AuditHead.Hash, o.AuditHead.Time)
	if !o.IdentityChecked {
		fmt.Fprintln(w, "  No expected identity was given (--mrenclave or --mrsigner): compare MRENCLAVE above with the one you expect.")
	}
	if o.PinnedAt != "" {
		fmt.Fprintf(w, "  Pinned the deployment root in %s\n", o.PinnedAt)
	}
}

// writeBundle writes the evidence of v, with the manifest the Coordinator reports right after
// (asked on a connection pinned to the root v verified).
func writeBundle(ctx context.Context, path, addr string, v *client.Verified) error {
	st, err := client.New(addr, v.Root).Status(ctx)
	if err != nil {
		return fmt.Errorf("read the Coordinator's manifest digest: %w", err)
	}
	b, err := json.MarshalIndent(client.NewBundle(addr, v, st, time.Now()), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// readBundle reads and parses a bundle file.
func readBundle(path string) (*client.Bundle, error) {
	raw, err := readBounded(path, client.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	b, err := client.ParseBundle(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func verifyBundle(path string, e client.Expect) (*client.Verified, error) {
	b, err := readBundle(path)
	if err != nil {
		return nil, err
	}
	rep := b.Verify(e, client.BundleOptions{})
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return rep.Verified, nil
}
