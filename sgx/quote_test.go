package sgx_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
)

func TestParseQuoteVectors(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			raw := v.File(t, "quote")
			q, err := sgx.ParseQuote(raw)
			if err != nil {
				t.Fatalf("ParseQuote: %v", err)
			}
			h := q.Header
			checkInt(t, "version", int(h.Version), v.Quote.Version)
			checkInt(t, "att_key_type", int(h.AttKeyType), v.Quote.AttKeyType)
			checkInt(t, "qe_svn", int(h.QESVN), v.Quote.QESVN)
			checkInt(t, "pce_svn", int(h.PCESVN), v.Quote.PCESVN)
			checkHex(t, "qe_vendor_id", h.QEVendorID[:], v.Quote.QEVendorID)
			checkHex(t, "user_data", h.UserData[:], v.Quote.UserData)
			checkInt(t, "auth data length", len(q.QEAuthData), v.Quote.AuthLen)
			checkInt(t, "cert data type", int(q.CertDataType), v.Quote.CertType)
			checkInt(t, "cert data length", len(q.CertData), v.Quote.CertLen)
			checkInt(t, "trailing", q.Trailing, 0)
			checkReport(t, "enclave", &q.Body, v.Enclave)
			checkReport(t, "qe", &q.QEReport, v.QEReport)
			if q.Body.Debug() != v.Expected.DebugEnclave {
				t.Errorf("Debug() = %v, want %v", q.Body.Debug(), v.Expected.DebugEnclave)
			}
			for i, c := range q.PCKChain {
				if c.Subject.CommonName != v.Quote.ChainOrder[i] {
					t.Errorf("chain[%d] = %q, want %q", i, c.Subject.CommonName, v.Quote.ChainOrder[i])
				}
			}
			if _, err := q.AttestationPublicKey(); err != nil {
				t.Errorf("AttestationPublicKey: %v", err)
			}
			enc, err := q.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) || !bytes.Equal(q.Raw(), raw) {
				t.Errorf("MarshalBinary does not reproduce the quote bytes")
			}
			if !bytes.Equal(q.SignedBytes(), raw[:sgx.SignedSize]) {
				t.Errorf("SignedBytes is not the first %d bytes", sgx.SignedSize)
			}
			if !bytes.Equal(q.RawQEReport(), raw[sgx.SignedSize+4+128:sgx.SignedSize+4+128+384]) {
				t.Errorf("RawQEReport is not at its offset")
			}
		})
	}
}

func checkInt(t *testing.T, name string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", name, got, want)
	}
}

func checkHex(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); !strings.EqualFold(g, want) {
		t.Errorf("%s = %s, want %s", name, g, want)
	}
}

func checkReport(t *testing.T, name string, r *sgx.ReportBody, want dcaptest.Report) {
	t.Helper()
	checkHex(t, name+" mrenclave", r.MREnclave[:], want.MREnclave)
	checkHex(t, name+" mrsigner", r.MRSigner[:], want.MRSigner)
	checkInt(t, name+" isvprodid", int(r.ISVProdID), want.ISVProdID)
	checkInt(t, name+" isvsvn", int(r.ISVSVN), want.ISVSVN)
	checkHex(t, name+" reportdata", r.ReportData[:], want.ReportData)
	if got := fmt.Sprintf("0x%016x", r.Attributes.Flags); got != want.Attributes {
		t.Errorf("%s attributes = %s, want %s", name, got, want.Attributes)
	}
	if want.CPUSVN != "" {
		checkHex(t, name+" cpusvn", r.CPUSVN[:], want.CPUSVN)
	}
}

func TestParseQuoteTolerates(t *testing.T) {
	v := dcaptest.Load(t)[0]
	raw := v.File(t, "quote")
	t.Run("padding", func(t *testing.T) {
		padded := append(bytes.Clone(raw), make([]byte, 100)...)
		q, err := sgx.ParseQuote(padded)
		if err != nil {
			t.Fatal(err)
		}
		if q.Trailing != 100 || !bytes.Equal(q.Raw(), raw) {
			t.Errorf("Trailing = %d, want 100", q.Trailing)
		}
	})
	t.Run("chain in any order", func(t *testing.T) {
		q, _ := sgx.ParseQuote(raw)
		want := q.PCKChain
		rng := rand.New(rand.NewPCG(1, 2))
		for range 6 {
			perm := rng.Perm(len(want))
			var pemChain []byte
			for _, i := range perm {
				pemChain = append(pemChain, pemCert(want[i].Raw)...)
			}
			pemChain = append(pemChain, 0)
			q2 := *q
			q2.CertData = pemChain
			b, err := q2.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got, err := sgx.ParseQuote(b)
			if err != nil {
				t.Fatalf("order %v: %v", perm, err)
			}
			for i := range want {
				if !bytes.Equal(got.PCKChain[i].Raw, want[i].Raw) {
					t.Errorf("order %v: chain[%d] = %q, want %q", perm, i, got.PCKChain[i].Subject.CommonName, want[i].Subject.CommonName)
				}
			}
		}
	})
}

func TestParseQuoteErrors(t *testing.T) {
	raw := dcaptest.Load(t)[0].File(t, "quote")
	q, _ := sgx.ParseQuote(raw)
	le := binary.LittleEndian
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(raw)) }
	reencode := func(f func(q *sgx.Quote)) []byte {
		q2 := *q
		f(&q2)
		b, err := q2.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chain := q.PCKChain
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "expected at least 436 bytes"},
		{"too large", make([]byte, sgx.MaxQuoteSize+1), "larger than"},
		{"version 4", mutate(func(b []byte) []byte { le.PutUint16(b, 4); return b }), "version 4 not supported; expected 3"},
		{"att key type", mutate(func(b []byte) []byte { le.PutUint16(b[2:], 3); return b }), "attestation key type 3 not supported"},
		{"tee type", mutate(func(b []byte) []byte { le.PutUint32(b[4:], 0x81); return b }), "TEE type 0x81 not supported"},
		{"sig len too long", mutate(func(b []byte) []byte { le.PutUint32(b[432:], uint32(len(b))); return b }), "exceeds the"},
		{"truncated", raw[:len(raw)-10], "exceeds the"},
		{"sig data short", mutate(func(b []byte) []byte { le.PutUint32(b[432:], 100); return b[:536] }), "expected at least 578 bytes"},
		{"auth len", mutate(func(b []byte) []byte { le.PutUint16(b[436+576:], 0xffff); return b }), "QE authentication data length 65535"},
		{"cert len", reencode(func(q *sgx.Quote) { q.CertData = q.CertData[:100] }), "certification data"},
		{"cert type", reencode(func(q *sgx.Quote) { q.CertDataType = 6 }), "certification data type 6 not supported; expected 5"},
		{"no certs", reencode(func(q *sgx.Quote) { q.CertData = []byte("\n\x00") }), "no certificate found"},
		{"junk after chain", reencode(func(q *sgx.Quote) { q.CertData = append(bytes.Clone(q.CertData), 'x') }), "unexpected bytes after the last PEM block"},
		{"junk between", reencode(func(q *sgx.Quote) {
			q.CertData = append(append(pemCert(chain[0].Raw), "junk"...), pemCert(chain[1].Raw)...)
		}), "unexpected bytes before PEM block 2"},
		{"wrong PEM type", reencode(func(q *sgx.Quote) {
			q.CertData = pem("PRIVATE KEY", chain[0].Raw)
		}), `type "PRIVATE KEY"; expected CERTIFICATE`},
		{"bad DER", reencode(func(q *sgx.Quote) { q.CertData = pem("CERTIFICATE", []byte{0x30, 0x03, 1, 2, 3}) }), "certificate 1"},
		{"duplicate", reencode(func(q *sgx.Quote) { q.CertData = append(pemCert(chain[0].Raw), pemCert(chain[0].Raw)...) }), "appears twice"},
		{"two leaves", reencode(func(q *sgx.Quote) {
			other := dcaptest.Load(t)[3].File(t, "quote")
			oq, _ := sgx.ParseQuote(other)
			q.CertData = append(pemCert(chain[0].Raw), pemCert(oq.PCKChain[0].Raw)...)
		}), "two leaves"},
		{"too many", reencode(func(q *sgx.Quote) { q.CertData = bytes.Repeat(pemCert(chain[2].Raw), 9) }), "more than 8 certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sgx.ParseQuote(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseQuote error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func pem(typ string, der []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "-----BEGIN %s-----\n", typ)
	enc := []byte(base64Std(der))
	for len(enc) > 64 {
		b.Write(enc[:64])
		b.WriteByte('\n')
		enc = enc[64:]
	}
	b.Write(enc)
	fmt.Fprintf(&b, "\n-----END %s-----\n", typ)
	return b.Bytes()
}

func pemCert(der []byte) []byte { return pem("CERTIFICATE", der) }

func TestReportBodyRoundTrip(t *testing.T) {
	var r sgx.ReportBody
	b := make([]byte, sgx.ReportBodySize)
	for i := range b {
		b[i] = byte(i * 7)
	}
	r, err := sgx.ParseReportBody(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.MarshalBinary()
	if !bytes.Equal(got, b) {
		t.Fatal("report body does not round-trip")
	}
	if _, err := sgx.ParseReportBody(b[:383]); err == nil || !strings.Contains(err.Error(), "expected 384 bytes, found 383") {
		t.Fatalf("short report body: err = %v", err)
	}
}

func FuzzParseQuote(f *testing.F) {
	for _, v := range dcaptest.Load(f) {
		f.Add(v.File(f, "quote"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := sgx.ParseQuote(b)
		if err != nil {
			return
		}
		enc, err := q.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed quote does not marshal: %v", err)
		}
		if !bytes.Equal(enc, q.Raw()) {
			t.Fatalf("parsed quote does not marshal to its bytes")
		}
		if len(q.PCKChain) == 0 {
			t.Fatalf("parsed quote without a PCK chain")
		}
	})
}
