package verify_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// region is a byte range of a quote or collateral file and the checks allowed to reject a
// mutation inside it.
type region struct {
	name       string
	start, end int
	checks     []verify.Check
}

// quoteRegions splits a quote into its fields (Intel quote v3 layout).
func quoteRegions(t *testing.T, q []byte) []region {
	t.Helper()
	const sigData = sgx.SignedSize + 4
	authLen := int(binary.LittleEndian.Uint16(q[sigData+576:]))
	authEnd := sigData + 578 + authLen
	var (
		format   = []verify.Check{verify.CheckQuoteFormat}
		quoteSig = []verify.Check{verify.CheckQuoteSignature}
		qeSig    = []verify.Check{verify.CheckQEReportSignature}
		binding  = []verify.Check{verify.CheckQEReportData}
	)
	return []region{
		{"header.version,att_key_type,tee_type", 0, 8, format},
		{"header.qe_svn,pce_svn", 8, 12, quoteSig},
		{"header.qe_vendor_id", 12, 28, []verify.Check{verify.CheckQEVendorID}},
		{"header.user_data", 28, 48, quoteSig},
		{"body", 48, sgx.SignedSize, quoteSig},
		{"signature_data_len", sgx.SignedSize, sigData, format},
		{"quote_signature", sigData, sigData + 64, quoteSig},
		{"attestation_key", sigData + 64, sigData + 128, binding},
		{"qe_report", sigData + 128, sigData + 512, qeSig},
		{"qe_report_signature", sigData + 512, sigData + 576, qeSig},
		{"qe_auth_data_len", sigData + 576, sigData + 578, format},
		{"qe_auth_data", sigData + 578, authEnd, binding},
		{"cert_data_type,size", authEnd, authEnd + 6, format},
		{"cert_data", authEnd + 6, len(q), []verify.Check{verify.CheckQuoteFormat, verify.CheckPCKChain, verify.CheckPCKCertificate}},
	}
}

// positions returns the offsets to flip in [start, end): all of them, or when sample > 0 and
// the range is longer, its first and last 32 bytes and an even spread of at least sample
// others.
func positions(start, end, sample int) []int {
	var ps []int
	if sample <= 0 || end-start <= sample+64 {
		for i := start; i < end; i++ {
			ps = append(ps, i)
		}
		return ps
	}
	stride := (end - start - 64) / sample
	for i := start; i < end; i++ {
		if i < start+32 || i >= end-32 || (i-start)%stride == 0 {
			ps = append(ps, i)
		}
	}
	return ps
}

// TestMutateQuote flips every byte of every quote (XOR 0x01; at least 200 per region with
// -short): each mutant is rejected by the check responsible for the region, never panics, and
// for the sets without TCB Info is rejected before the missing-collateral check.
func TestMutateQuote(t *testing.T) {
	ver := verify.New(verify.IntelRoot())
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			quote := v.File(t, "quote")
			col := loadCollateral(t, v)
			orig, err := sgx.ParseQuote(quote)
			if err != nil {
				t.Fatal(err)
			}
			sample := 0
			if testing.Short() {
				sample = 200
			}
			var rejected, equivalent int
			for _, rg := range quoteRegions(t, quote) {
				for _, pos := range positions(rg.start, rg.end, sample) {
					m := bytes.Clone(quote)
					m[pos] ^= 0x01
					_, err := ver.Verify(m, col, v.VerificationTime)
					if err == nil {
						if sameChain(orig, m) {
							equivalent++
							continue
						}
						t.Errorf("%s: flip at %d accepted", rg.name, pos)
						continue
					}
					rejected++
					c := checkOf(err)
					if !slices.Contains(rg.checks, c) {
						t.Errorf("%s: flip at %d rejected by %q (%v); want one of %v", rg.name, pos, c, err, rg.checks)
					}
				}
			}
			t.Logf("%d mutants rejected, %d skipped as equivalent (identical certificate DER)", rejected, equivalent)
		})
	}
}

// sameChain reports whether mutant is the original quote with certification data that decodes
// to the same certificates: a flip in a base64 padding bit of the PEM cannot change meaning.
func sameChain(orig *sgx.Quote, mutant []byte) bool {
	q, err := sgx.ParseQuote(mutant)
	if err != nil || len(q.PCKChain) != len(orig.PCKChain) {
		return false
	}
	for i, c := range q.PCKChain {
		if !bytes.Equal(c.Raw, orig.PCKChain[i].Raw) {
			return false
		}
	}
	q.CertData = orig.CertData
	a, err1 := q.MarshalBinary()
	b, err2 := orig.MarshalBinary()
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// collateralRoles are the collateral files of vector.json, with the check that must reject a
// damaged copy that still parses.
var collateralRoles = []struct {
	role  string
	check verify.Check
}{
	{"tcb_info", verify.CheckTCBInfoSignature},
	{"tcb_info_issuer_chain", verify.CheckTCBInfoIssuerChain},
	{"qe_identity", verify.CheckQEIdentitySignature},
	{"qe_identity_issuer_chain", verify.CheckQEIdentityIssuerChain},
	{"root_ca_crl", verify.CheckRootCACRL},
	{"pck_crl", verify.CheckPCKCRL},
	{"pck_crl_issuer_chain", verify.CheckPCKCRL},
}

// setRole parses b as the collateral item role and stores it in col. It returns the parsed
// item's meaningful content (what a signature covers), to recognise equivalent mutants.
func setRole(col *verify.Collateral, role string, b []byte) ([]byte, error) {
	switch role {
	case "tcb_info":
		ti, err := verify.ParseTCBInfo(b)
		if err != nil {
			return nil, err
		}
		col.TCBInfo = ti
		sig := ti.Signature()
		return append(bytes.Clone(ti.SignedBytes()), sig[:]...), nil
	case "qe_identity":
		qi, err := verify.ParseQEIdentity(b)
		if err != nil {
			return nil, err
		}
		col.QEIdentity = qi
		sig := qi.Signature()
		return append(bytes.Clone(qi.SignedBytes()), sig[:]...), nil
	case "root_ca_crl", "pck_crl":
		crl, err := verify.ParseCRL(b)
		if err != nil {
			return nil, err
		}
		if role == "root_ca_crl" {
			col.RootCACRL = crl
		} else {
			col.PCKCRL = crl
		}
		return append(bytes.Clone(crl.RawTBSRevocationList), crl.Signature...), nil
	}
	chain, err := verify.ParseCertChain(b)
	if err != nil {
		return nil, err
	}
	var content []byte
	for _, c := range chain {
		content = append(content, c.Raw...)
	}
	switch role {
	case "tcb_info_issuer_chain":
		col.TCBInfoIssuerChain = chain
	case "qe_identity_issuer_chain":
		col.QEIdentityIssuerChain = chain
	case "pck_crl_issuer_chain":
		col.PCKCRLIssuerChain = chain
	default:
		return nil, fmt.Errorf("unknown role %q", role)
	}
	return content, nil
}

// TestMutateCollateral flips every byte (XOR 0x01; a sample of at least 200 per file with
// -short) of every collateral file. Each mutant either does not parse or is rejected by the
// check responsible for the item; mutants that parse to the same content are counted and
// skipped.
func TestMutateCollateral(t *testing.T) {
	ver := verify.New(verify.IntelRoot())
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			quote := v.File(t, "quote")
			files := map[string][]byte{}
			base := &verify.Collateral{}
			for _, r := range collateralRoles {
				if b := v.File(t, r.role); b != nil {
					files[r.role] = b
					if _, err := setRole(base, r.role, b); err != nil {
						t.Fatalf("%s: %v", r.role, err)
					}
				}
			}
			if _, err := ver.Verify(quote, base, v.VerificationTime); (err == nil) != (v.Expected.TCBStatus != nil) {
				t.Fatalf("unmutated collateral: Verify error %v", err)
			}
			sample := 0
			if testing.Short() {
				sample = 200
			}
			for _, r := range collateralRoles {
				file := files[r.role]
				if file == nil {
					continue
				}
				orig, _ := setRole(&verify.Collateral{}, r.role, file)
				var unparsable, rejected, equivalent int
				for _, pos := range positions(0, len(file), sample) {
					m := bytes.Clone(file)
					m[pos] ^= 0x01
					col := *base
					content, err := setRole(&col, r.role, m)
					if err != nil {
						unparsable++
						continue
					}
					_, err = ver.Verify(quote, &col, v.VerificationTime)
					if err == nil {
						if bytes.Equal(content, orig) {
							equivalent++
							continue
						}
						t.Errorf("%s: flip at %d accepted", r.role, pos)
						continue
					}
					rejected++
					if c := checkOf(err); c != r.check {
						t.Errorf("%s: flip at %d rejected by %q (%v); want %q", r.role, pos, c, err, r.check)
					}
				}
				t.Logf("%s: %d bytes, %d mutants do not parse, %d rejected, %d skipped as equivalent", r.role, len(file), unparsable, rejected, equivalent)
				if unparsable+rejected+equivalent < min(200, len(file)) {
					t.Errorf("%s: only %d positions tried; want at least 200", r.role, unparsable+rejected+equivalent)
				}
			}
		})
	}
}

// TestEquivalentPEM flips a base64 padding bit of the PEM certification data: the DER is the
// same, Verify accepts it and sameChain recognises it (no XOR 0x01 flip of these quotes is such
// a flip, so the mutation tests above skip none).
func TestEquivalentPEM(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	v := vectorNamed(t, "phala-processor-config-swhardening")
	quote := v.File(t, "quote")
	orig, err := sgx.ParseQuote(quote)
	if err != nil {
		t.Fatal(err)
	}
	pad := bytes.Index(quote, []byte("=\n-----END CERTIFICATE-----"))
	if pad < 0 {
		t.Fatal("no padded PEM block in the quote")
	}
	m := bytes.Clone(quote)
	m[pad-1] = alphabet[strings.IndexByte(alphabet, m[pad-1])^1] // lowest bit: padding
	if bytes.Equal(m, quote) {
		t.Fatal("mutation changed nothing")
	}
	if _, err := verify.New(verify.IntelRoot()).Verify(m, loadCollateral(t, v), v.VerificationTime); err != nil {
		t.Errorf("Verify of an equivalent encoding: %v", err)
	}
	if !sameChain(orig, m) {
		t.Errorf("sameChain does not recognise an equivalent encoding")
	}
	m[pad-1] = alphabet[strings.IndexByte(alphabet, quote[pad-1])^4] // a value bit
	if sameChain(orig, m) {
		t.Errorf("sameChain accepts a changed certificate")
	}
}
