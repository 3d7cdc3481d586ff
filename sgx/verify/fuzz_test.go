package verify_test

import (
	"bytes"
	"encoding/pem"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// addVectorSeeds adds the content of role from every vector that has it.
func addVectorSeeds(f *testing.F, roles ...string) {
	for _, v := range dcaptest.Load(f) {
		for _, role := range roles {
			if b := v.File(f, role); b != nil {
				f.Add(b)
			}
		}
	}
}

func FuzzParseTCBInfo(f *testing.F) {
	addVectorSeeds(f, "tcb_info")
	f.Add([]byte(`{"tcbInfo":{"version":2},"signature":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ti, err := verify.ParseTCBInfo(b)
		if err != nil {
			return
		}
		if !bytes.Contains(b, ti.SignedBytes()) || !bytes.Equal(ti.Raw(), b) {
			t.Fatalf("SignedBytes is not part of the input")
		}
		if (ti.Version != 2 && ti.Version != 3) || ti.ID == "TDX" || len(ti.Levels) == 0 || !ti.NextUpdate.After(ti.IssueDate) {
			t.Fatalf("accepted an invalid TCB Info: version %d id %q %d levels", ti.Version, ti.ID, len(ti.Levels))
		}
		again, err := verify.ParseTCBInfo(ti.Raw())
		if err != nil || len(again.Levels) != len(ti.Levels) || again.FMSPC != ti.FMSPC {
			t.Fatalf("parsing Raw again: %v", err)
		}
	})
}

func FuzzParseQEIdentity(f *testing.F) {
	addVectorSeeds(f, "qe_identity")
	f.Fuzz(func(t *testing.T, b []byte) {
		qi, err := verify.ParseQEIdentity(b)
		if err != nil {
			return
		}
		if !bytes.Contains(b, qi.SignedBytes()) || qi.ID != "QE" || qi.Version != 2 || len(qi.Levels) == 0 {
			t.Fatalf("accepted an invalid QE Identity: id %q version %d %d levels", qi.ID, qi.Version, len(qi.Levels))
		}
		again, err := verify.ParseQEIdentity(qi.Raw())
		if err != nil || again.MRSigner != qi.MRSigner || len(again.Levels) != len(qi.Levels) {
			t.Fatalf("parsing Raw again: %v", err)
		}
	})
}

func FuzzParseCRL(f *testing.F) {
	for _, v := range dcaptest.Load(f) {
		for _, role := range []string{"root_ca_crl", "pck_crl"} {
			if b := v.File(f, role); b != nil {
				f.Add(b)
				f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: b}))
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		crl, err := verify.ParseCRL(b)
		if err != nil {
			return
		}
		again, err := verify.ParseCRL(crl.Raw)
		if err != nil || !bytes.Equal(again.Raw, crl.Raw) {
			t.Fatalf("parsing Raw again: %v", err)
		}
		if !bytes.Equal(crl.Raw, b) && !bytes.Contains(b, []byte("-----BEGIN X509 CRL-----")) {
			t.Fatalf("accepted DER with %d extra bytes", len(b)-len(crl.Raw))
		}
	})
}

// fuzzSet is a vector's quote and collateral, verified by a Verifier shared across inputs.
type fuzzSet struct {
	v     *dcaptest.Vector
	quote *sgx.Quote
	col   *verify.Collateral
}

// FuzzVerify verifies mutated quote bytes against the fixed collateral of a vector. It must
// never panic, must return a Result exactly when the quote parses, and may only accept a quote
// whose signed content and QE report are those of one of the real quotes (nothing else can be
// forged; the oasis quote is genuinely valid with the dcap-rs collateral, same FMSPC).
func FuzzVerify(f *testing.F) {
	var sets []fuzzSet
	for _, v := range dcaptest.Load(f) {
		raw := v.File(f, "quote")
		q, err := sgx.ParseQuote(raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(len(sets)), raw)
		sets = append(sets, fuzzSet{v, q, loadCollateral(f, v)})
	}
	ver := verify.New(verify.IntelRoot())
	f.Fuzz(func(t *testing.T, set uint8, b []byte) {
		s := sets[int(set)%len(sets)]
		res, err := ver.Verify(b, s.col, s.v.VerificationTime)
		q, perr := sgx.ParseQuote(b)
		if (res != nil) != (perr == nil) {
			t.Fatalf("Result %v for a quote that parses: %v", res != nil, perr)
		}
		if err != nil {
			if _, ok := err.(*verify.CheckError); !ok {
				t.Fatalf("error %T is not a *CheckError: %v", err, err)
			}
			return
		}
		for _, o := range sets {
			if bytes.Equal(q.SignedBytes(), o.quote.SignedBytes()) && bytes.Equal(q.RawQEReport(), o.quote.RawQEReport()) {
				return
			}
		}
		t.Fatalf("accepted a quote whose signed content is not a real quote's")
	})
}
