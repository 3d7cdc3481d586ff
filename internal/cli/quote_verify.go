package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/spf13/cobra"
)

// newVerifyJSON is the --output json document of a verification's result r and error err.
func newVerifyJSON(r *verify.Result, err error) jsonoutput.QuoteVerify {
	var out jsonoutput.QuoteVerify
	if err != nil {
		msg := err.Error()
		out.Error = &msg
	}
	if r == nil {
		return out
	}
	h, e := r.Header, r.Enclave
	out.Version, out.AttKeyType, out.QESVN, out.PCESVN = &h.Version, &h.AttKeyType, &h.QESVN, &h.PCESVN
	out.MREnclave = new(hex.EncodeToString(e.MREnclave[:]))
	out.MRSigner = new(hex.EncodeToString(e.MRSigner[:]))
	out.ISVProdID, out.ISVSVN, out.Debug = &e.ISVProdID, &e.ISVSVN, &e.Debug
	out.ReportData = new(hex.EncodeToString(e.ReportData[:]))
	p := r.Platform
	if p.PCK != nil {
		out.FMSPC = new(hex.EncodeToString(p.FMSPC[:]))
		out.PCEID = new(hex.EncodeToString(p.PCEID[:]))
	}
	if p.TCBStatus != "" {
		out.TCBStatus = new(string(p.TCBStatus))
		out.AdvisoryIDs = append([]string{}, p.AdvisoryIDs...)
	}
	out.CRLChecked = p.CRLChecked
	out.CollateralExpired = p.CollateralExpired
	out.Verified = err == nil
	return out
}

func (a *app) newQuoteVerifyCmd() *cobra.Command {
	var (
		out        outputFlag
		collateral string
		at         string
		rootPath   string
	)
	cmd := &cobra.Command{
		Use:   "verify FILE --collateral DIR",
		Short: "Verify an SGX quote with its collateral, offline",
		Long: `Verify an SGX ECDSA quote v3 with Intel collateral read from a directory (tcb_info.json,
tcb_info_issuer_chain.pem, qe_identity.json, [qe_identity_issuer_chain.pem], root_ca_crl,
pck_crl, [pck_crl_issuer_chain.pem]).

The quote is verified when every signature, certificate chain and identity check passes and TCB
Info and QE Identity were present; missing CRLs leave it verified with crl_checked false. The exit
status is 0 when verified, whatever the TCB status or debug bit: deciding whether those are
acceptable is policy, which the Coordinator applies from its manifest.

By default the chain must end at Intel's SGX Root CA key; --root pins another root, such as the
root_ca.pem of a simulated platform.

Where quotes come from: testdata/dcap in the source holds real SGX quotes, each folder with its
collateral and, in vector.json, the time to verify it at (--at); a Coordinator's own quote and
collateral are in the bundle "cloister verify --bundle FILE" writes, which "cloister verify
--from-bundle FILE" checks again.`,
		Example: `  cloister quote verify testdata/dcap/phala-processor-config-swhardening/quote.bin \
      --collateral testdata/dcap/phala-processor-config-swhardening --at 2025-07-01T00:00:00Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			when := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageError(fmt.Errorf("--at %q: expected an RFC 3339 time such as 2025-07-01T00:00:00Z", at))
				}
				when = t
			}
			root := verify.IntelRoot()
			if rootPath != "" {
				b, err := readBounded(rootPath, 64<<10)
				if err != nil {
					return fmt.Errorf("--root: %w", err)
				}
				certs, err := pki.ParseCertsPEM(b)
				if err != nil {
					return fmt.Errorf("--root %s: %w", rootPath, err)
				}
				root = certs[0]
			}
			quote, err := readQuoteFile(args[0])
			if err != nil {
				return err
			}
			var res *verify.Result
			col, verr := verify.LoadCollateral(collateral)
			if verr != nil {
				verr = fmt.Errorf("--collateral: %w", verr)
				if q, err := sgx.ParseQuote(quote); err == nil {
					res = &verify.Result{Header: q.Header, Enclave: verify.Enclave{
						MREnclave: q.Body.MREnclave, MRSigner: q.Body.MRSigner, ISVProdID: q.Body.ISVProdID,
						ISVSVN: q.Body.ISVSVN, Debug: q.Body.Debug(), ReportData: q.Body.ReportData,
					}}
				}
			} else {
				res, verr = verify.New(root).Verify(quote, col, when)
			}
			v := newVerifyJSON(res, verr)
			if err := out.print(cmd.OutOrStdout(), v, func(w io.Writer) { printVerify(w, &v, when) }); err != nil {
				return err
			}
			if verr != nil {
				return &exitError{code: 1, msg: "quote not verified: " + verr.Error()}
			}
			return nil
		},
	}
	out.register(cmd)
	cmd.Flags().StringVar(&collateral, "collateral", "", "directory holding the collateral (required)")
	cmd.Flags().StringVar(&at, "at", "", "verification instant, RFC 3339 (default: now)")
	cmd.Flags().StringVar(&rootPath, "root", "", "PEM certificate whose key is the trusted root (default: Intel SGX Root CA)")
	_ = cmd.MarkFlagRequired("collateral")
	return cmd
}

func printVerify(w io.Writer, v *jsonoutput.QuoteVerify, at time.Time) {
	if v.Verified {
		fmt.Fprintf(w, "Quote verified at %s\n", at.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "Quote NOT verified at %s\n", at.UTC().Format(time.RFC3339))
	}
	line := func(k string, p *string) {
		if p != nil {
			fmt.Fprintf(w, "  %-18s %s\n", k, *p)
		}
	}
	line("MRENCLAVE", v.MREnclave)
	line("MRSIGNER", v.MRSigner)
	if v.ISVProdID != nil {
		fmt.Fprintf(w, "  %-18s %d\n  %-18s %d\n  %-18s %v\n", "ISVPRODID", *v.ISVProdID, "ISVSVN", *v.ISVSVN, "debug", *v.Debug)
	}
	line("report data", v.ReportData)
	line("FMSPC", v.FMSPC)
	line("TCB status", v.TCBStatus)
	if v.TCBStatus != nil {
		fmt.Fprintf(w, "  %-18s %s\n", "advisories", strings.Join(v.AdvisoryIDs, ", "))
	}
	fmt.Fprintf(w, "  %-18s %v\n  %-18s %v\n", "CRLs checked", v.CRLChecked, "collateral expired", v.CollateralExpired)
	line("error", v.Error)
}
