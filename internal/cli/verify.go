package cli

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/api"
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

// bundle is an offline verification bundle: the Coordinator's answer to a fresh nonce.
type bundle struct {
	Format      string          `json:"format"`
	Coordinator string          `json:"coordinator"`
	Nonce       string          `json:"nonce"`
	VerifiedAt  time.Time       `json:"verified_at"`
	Response    json.RawMessage `json:"response"`
}

const bundleFormat = "cloister-verification-bundle-v1"

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

--bundle FILE also writes the Coordinator's answer, which --from-bundle FILE verifies again
offline, for an auditor who was not there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runVerify(cmd, &f) },
	}
	a.registerConnFlags(cmd, &f.conn)
	f.out.register(cmd)
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
	fl.StringVar(&f.bundle, "bundle", "", "write an offline verification bundle to this file")
	fl.StringVar(&f.fromBundle, "from-bundle", "", "verify a bundle written by --bundle instead of contacting the Coordinator")
	fl.BoolVar(&f.replacePin, "replace-pin", false, "replace a pinned root that differs (a new deployment)")
	fl.BoolVar(&f.acceptAny, "insecure-accept-any-enclave", false, "accept and pin any genuine enclave; compare the printed MRENCLAVE yourself")
	return cmd
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

func (a *app) runVerify(cmd *cobra.Command, f *verifyFlags) error {
	e, err := f.expect()
	if err != nil {
		return err
	}
	if len(e.MREnclave) == 0 && e.MRSigner == nil && !f.acceptAny {
		// Anyone can run some genuine enclave; only the expected identity makes it the
		// Coordinator. Pinning without one would trust whoever answered.
		return usageError(errors.New("no expected Coordinator identity: give --mrenclave, or --mrsigner with --isvprodid and --min-isvsvn; or --insecure-accept-any-enclave to accept and pin whatever genuine enclave answers"))
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
	}
	if f.fromBundle == "" {
		if out.PinnedAt, err = a.pin(&f.conn, v.Root, f.replacePin); err != nil {
			return err
		}
		if f.bundle != "" {
			if err := writeBundle(f.bundle, f.conn.addr, v); err != nil {
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
	if !o.IdentityChecked {
		fmt.Fprintln(w, "  No expected identity was given (--mrenclave or --mrsigner): compare MRENCLAVE above with the one you expect.")
	}
	if o.PinnedAt != "" {
		fmt.Fprintf(w, "  Pinned the deployment root in %s\n", o.PinnedAt)
	}
}

func writeBundle(path, addr string, v *client.Verified) error {
	resp, err := json.Marshal(v.Response)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(bundle{
		Format: bundleFormat, Coordinator: addr, Nonce: hex.EncodeToString(v.Nonce[:]),
		VerifiedAt: time.Now().UTC(), Response: resp,
	}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

func verifyBundle(path string, e client.Expect) (*client.Verified, error) {
	raw, err := readBounded(path, 4<<20)
	if err != nil {
		return nil, err
	}
	var b bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	if b.Format != bundleFormat {
		return nil, fmt.Errorf("bundle %s: format %q; expected %q", path, b.Format, bundleFormat)
	}
	nonce, err := parseDigest(b.Nonce)
	if err != nil {
		return nil, fmt.Errorf("bundle nonce: %w", err)
	}
	var resp api.QuoteResponse
	if err := json.Unmarshal(b.Response, &resp); err != nil {
		return nil, fmt.Errorf("bundle response: %w", err)
	}
	at := b.VerifiedAt
	e.Now = func() time.Time { return at }
	return client.VerifyQuoteResponse(&resp, nil, nonce, e)
}
