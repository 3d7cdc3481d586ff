package cli

import (
	"encoding/hex"

	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/spf13/cobra"
)

// verifyJSON is the output of `cloister quote verify --output json`. Its keys are a published
// contract: fields that could not be determined are null.
type verifyJSON struct {
	Version           *uint16  `json:"version"`
	AttKeyType        *uint16  `json:"att_key_type"`
	QESVN             *uint16  `json:"qe_svn"`
	PCESVN            *uint16  `json:"pce_svn"`
	MREnclave         *string  `json:"mrenclave"`
	MRSigner          *string  `json:"mrsigner"`
	ISVProdID         *uint16  `json:"isvprodid"`
	ISVSVN            *uint16  `json:"isvsvn"`
	Debug             *bool    `json:"debug"`
	ReportData        *string  `json:"report_data"`
	FMSPC             *string  `json:"fmspc"`
	PCEID             *string  `json:"pceid"`
	TCBStatus         *string  `json:"tcb_status"`
	AdvisoryIDs       []string `json:"advisory_ids"`
	CRLChecked        bool     `json:"crl_checked"`
	CollateralExpired bool     `json:"collateral_expired"`
	Verified          bool     `json:"verified"`
	Error             *string  `json:"error"`
}

func newVerifyJSON(r *verify.Result, err error) verifyJSON {
	var out verifyJSON
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
root_ca.pem of a simulated platform.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			when := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at %q: expected an RFC 3339 time such as 2025-07-01T00:00:00Z", at)
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

func printVerify(w io.Writer, v *verifyJSON, at time.Time) {
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
