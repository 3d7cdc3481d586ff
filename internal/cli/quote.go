package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/spf13/cobra"
)

func (a *app) newQuoteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quote",
		Short: "Look at and verify raw SGX quotes offline",
	}
	cmd.AddCommand(a.newQuoteInspectCmd(), a.newQuoteVerifyCmd())
	return cmd
}

// maxQuoteFile bounds what quote commands read: a quote is at most sgx.MaxQuoteSize, but files
// may carry padding after it.
const maxQuoteFile = 1 << 20

func readQuoteFile(path string) ([]byte, error) { return readBounded(path, maxQuoteFile) }

func newReportJSON(r *sgx.ReportBody) jsonoutput.QuoteReport {
	return jsonoutput.QuoteReport{
		MREnclave:  hex.EncodeToString(r.MREnclave[:]),
		MRSigner:   hex.EncodeToString(r.MRSigner[:]),
		ISVProdID:  r.ISVProdID,
		ISVSVN:     r.ISVSVN,
		ConfigSVN:  r.ConfigSVN,
		Attributes: fmt.Sprintf("%016x", r.Attributes.Flags),
		XFRM:       fmt.Sprintf("%016x", r.Attributes.XFRM),
		Debug:      r.Debug(),
		MiscSelect: fmt.Sprintf("%08x", r.MiscSelect),
		CPUSVN:     hex.EncodeToString(r.CPUSVN[:]),
		ReportData: hex.EncodeToString(r.ReportData[:]),
	}
}

func newInspectJSON(q *sgx.Quote) jsonoutput.QuoteInspect {
	out := jsonoutput.QuoteInspect{
		Version:        q.Header.Version,
		AttKeyType:     q.Header.AttKeyType,
		QESVN:          q.Header.QESVN,
		PCESVN:         q.Header.PCESVN,
		QEVendorID:     hex.EncodeToString(q.Header.QEVendorID[:]),
		UserData:       hex.EncodeToString(q.Header.UserData[:]),
		Enclave:        newReportJSON(&q.Body),
		QEReport:       newReportJSON(&q.QEReport),
		QEAuthDataLen:  len(q.QEAuthData),
		CertDataType:   q.CertDataType,
		TrailingBytes:  q.Trailing,
		AttestationKey: hex.EncodeToString(q.AttestationKey[:]),
	}
	for _, c := range q.PCKChain {
		out.PCK.Chain = append(out.PCK.Chain, c.Subject.CommonName)
	}
	leaf := q.PCKChain[0]
	out.PCK.Issuer = leaf.Issuer.CommonName
	out.PCK.NotAfter = leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
	ext, err := sgx.ParsePCKExtensions(leaf)
	if err != nil {
		out.PCK.ParseErrors = err.Error()
		return out
	}
	out.PCK.FMSPC = hex.EncodeToString(ext.FMSPC[:])
	out.PCK.PCEID = hex.EncodeToString(ext.PCEID[:])
	out.PCK.SGXType = ext.SGXType.String()
	out.PCK.PCESVN = ext.TCB.PCESVN
	for _, s := range ext.TCB.CompSVN {
		out.PCK.CompSVNs = append(out.PCK.CompSVNs, int(s))
	}
	out.PCK.CPUSVN = hex.EncodeToString(ext.TCB.CPUSVN[:])
	out.PCK.PPID = hex.EncodeToString(ext.PPID[:])
	return out
}

func (a *app) newQuoteInspectCmd() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print the fields of an SGX quote (no verification)",
		Long: `Print the fields of an SGX ECDSA quote version 3: header, enclave identity, QE report and
the PCK certificate's platform identity. Nothing is verified; use "cloister quote verify" for that.

FILE holds the raw quote bytes: what /dev/attestation/quote returns in an enclave under Gramine,
or one of the real quotes in testdata/dcap of the source (each folder's quote.bin). A
Coordinator's quote comes with the bundle "cloister verify --bundle FILE" writes.`,
		Example: `  cloister quote inspect testdata/dcap/oasis-platform-swhardening/quote.bin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readQuoteFile(args[0])
			if err != nil {
				return err
			}
			q, err := sgx.ParseQuote(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			v := newInspectJSON(q)
			return out.print(cmd.OutOrStdout(), v, func(w io.Writer) { printInspect(w, &v) })
		},
	}
	out.register(cmd)
	return cmd
}

func printInspect(w io.Writer, v *jsonoutput.QuoteInspect) {
	fmt.Fprintf(w, "SGX quote v%d (attestation key type %d), QE SVN %d, PCE SVN %d\n", v.Version, v.AttKeyType, v.QESVN, v.PCESVN)
	fmt.Fprintf(w, "Enclave\n")
	printReport(w, &v.Enclave)
	fmt.Fprintf(w, "Quoting enclave\n")
	printReport(w, &v.QEReport)
	fmt.Fprintf(w, "Platform (PCK certificate)\n")
	fmt.Fprintf(w, "  issuer        %s\n", v.PCK.Issuer)
	if v.PCK.ParseErrors != "" {
		fmt.Fprintf(w, "  SGX extension %s\n", v.PCK.ParseErrors)
	} else {
		fmt.Fprintf(w, "  FMSPC         %s\n  PCE-ID        %s\n  SGX type      %s\n", v.PCK.FMSPC, v.PCK.PCEID, v.PCK.SGXType)
		fmt.Fprintf(w, "  PCESVN        %d\n  TCB SVNs      %v\n  CPUSVN        %s\n", v.PCK.PCESVN, v.PCK.CompSVNs, v.PCK.CPUSVN)
	}
	fmt.Fprintf(w, "  chain         %s\n", strings.Join(v.PCK.Chain, " <- "))
	if v.TrailingBytes > 0 {
		fmt.Fprintf(w, "(%d bytes of padding after the quote were ignored)\n", v.TrailingBytes)
	}
}

func printReport(w io.Writer, r *jsonoutput.QuoteReport) {
	fmt.Fprintf(w, "  MRENCLAVE     %s\n  MRSIGNER      %s\n", r.MREnclave, r.MRSigner)
	fmt.Fprintf(w, "  ISVPRODID     %d\n  ISVSVN        %d\n", r.ISVProdID, r.ISVSVN)
	debug := ""
	if r.Debug {
		debug = "  DEBUG: enclave memory is readable by the host"
	}
	fmt.Fprintf(w, "  attributes    %s (xfrm %s)%s\n", r.Attributes, r.XFRM, debug)
	fmt.Fprintf(w, "  report data   %s\n", r.ReportData)
}
