package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		caType  sgx.PCKCAType
		caName  string
		sgxType sgx.SGXType
	}{
		{sgx.PCKCAProcessor, PCKProcessorCAName, sgx.SGXTypeStandard},
		{sgx.PCKCAPlatform, PCKPlatformCAName, sgx.SGXTypeScalable},
	} {
		t.Run(string(tc.caType), func(t *testing.T) {
			p := create(t, Options{CAType: tc.caType})
			body := testBody()
			raw, err := p.Quote(body)
			if err != nil {
				t.Fatalf("Quote: %v", err)
			}
			q, err := sgx.ParseQuote(raw)
			if err != nil {
				t.Fatalf("ParseQuote: %v", err)
			}
			if q.Trailing != 0 {
				t.Errorf("quote has %d trailing bytes, want 0", q.Trailing)
			}

			h := q.Header
			if h.Version != 3 || h.AttKeyType != 2 || h.TEEType != 0 || h.QEVendorID != sgx.IntelQEVendorID {
				t.Errorf("header = %+v, want version 3, att key type 2, TEE type 0, Intel's QE vendor ID", h)
			}
			if h.QESVN != DefaultQESVN || h.PCESVN != DefaultTCB.PCESVN {
				t.Errorf("header QE SVN %d, PCE SVN %d; want %d, %d", h.QESVN, h.PCESVN, DefaultQESVN, DefaultTCB.PCESVN)
			}
			if !bytes.Equal(h.UserData[:16], p.qeID[:]) || [4]byte(h.UserData[16:]) != [4]byte{} {
				t.Errorf("header user data %x, want the QE ID %x and 4 zero bytes", h.UserData, p.qeID)
			}
			if q.Body != body {
				t.Errorf("quote body = %+v, want %+v", q.Body, body)
			}

			att, err := q.AttestationPublicKey()
			if err != nil {
				t.Fatal(err)
			}
			verifyRS(t, "quote signature (attestation key)", att, q.SignedBytes(), q.Signature)
			verifyRS(t, "QE report signature (PCK key)", q.PCKChain[0].PublicKey, q.RawQEReport(), q.QEReportSignature)

			binding := sha256.Sum256(slices.Concat(q.AttestationKey[:], q.QEAuthData))
			if want := append(binding[:], make([]byte, 32)...); !bytes.Equal(q.QEReport.ReportData[:], want) {
				t.Errorf("QE report data = %x, want SHA-256(attestation key ‖ auth data) ‖ zeros = %x", q.QEReport.ReportData, want)
			}
			qe := p.QEIdentity()
			r := q.QEReport
			if r.MREnclave != qe.MREnclave || r.MRSigner != qe.MRSigner || r.ISVProdID != qe.ISVProdID ||
				r.ISVSVN != qe.ISVSVN || r.Attributes != qe.Attributes || r.MiscSelect != qe.MiscSelect {
				t.Errorf("QE report %+v does not carry the QE identity %+v", r, qe)
			}
			if len(q.QEAuthData) != 32 {
				t.Errorf("QE auth data is %d bytes, want 32", len(q.QEAuthData))
			}

			if q.CertDataType != sgx.CertDataTypePCKChain || !bytes.HasSuffix(q.CertData, []byte("-----END CERTIFICATE-----\n\x00")) {
				t.Errorf("cert data type %d ending %q; want type 5 ending with \"\\n\\x00\"", q.CertDataType, q.CertData[max(0, len(q.CertData)-30):])
			}
			if len(q.PCKChain) != 3 || !q.PCKChain[2].Equal(p.Root()) {
				t.Fatalf("PCK chain has %d certificates, want leaf, PCK CA and the platform root", len(q.PCKChain))
			}
			if got := q.PCKChain[1].Subject.CommonName; got != tc.caName {
				t.Errorf("PCK CA name = %q, want %q", got, tc.caName)
			}
			if ca, err := sgx.PCKCATypeOf(q.PCKChain[1].Subject.CommonName); err != nil || ca != tc.caType {
				t.Errorf("PCKCATypeOf(PCK CA) = %q, %v; want %q", ca, err, tc.caType)
			}
			roots := x509.NewCertPool()
			roots.AddCert(p.Root())
			inter := x509.NewCertPool()
			inter.AddCert(q.PCKChain[1])
			if _, err := q.PCKChain[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			}); err != nil {
				t.Errorf("PCK chain does not verify to the simulated root: %v", err)
			}

			ext, err := sgx.ParsePCKExtensions(q.PCKChain[0])
			if err != nil {
				t.Fatalf("PCK extension: %v", err)
			}
			if ext.FMSPC != DefaultFMSPC || ext.PCEID != [2]byte{} || ext.SGXType != tc.sgxType || ext.TCB != DefaultTCB {
				t.Errorf("PCK extension = %+v; want FMSPC %x, PCE-ID 0000, SGX type %v, TCB %+v", ext, DefaultFMSPC, tc.sgxType, DefaultTCB)
			}
			if ext.PPID == [16]byte{} {
				t.Error("PPID is zero, want a random platform identifier")
			}
			scalable := tc.caType == sgx.PCKCAPlatform
			if (len(ext.PlatformInstanceID) == 16) != scalable || (ext.Configuration != nil) != scalable {
				t.Errorf("platform instance ID %x, configuration %+v; want both only for a Platform CA platform", ext.PlatformInstanceID, ext.Configuration)
			}
		})
	}
}

func TestQuoteOptions(t *testing.T) {
	tcb := sgx.PCKTCB{CompSVN: [16]byte{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, PCESVN: 11, CPUSVN: [16]byte{9}}
	fmspc := [6]byte{0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00}
	p := create(t, Options{TCB: &tcb, QESVN: new(uint16(3)), FMSPC: fmspc})
	raw, err := p.Quote(testBody())
	if err != nil {
		t.Fatal(err)
	}
	q, err := sgx.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.QESVN != 3 || q.QEReport.ISVSVN != 3 || q.Header.PCESVN != 11 {
		t.Errorf("QE SVN %d (report %d), PCE SVN %d; want 3, 3, 11", q.Header.QESVN, q.QEReport.ISVSVN, q.Header.PCESVN)
	}
	if q.QEReport.CPUSVN != tcb.CPUSVN {
		t.Errorf("QE report CPUSVN %x, want the platform's %x", q.QEReport.CPUSVN, tcb.CPUSVN)
	}
	ext, err := sgx.ParsePCKExtensions(q.PCKChain[0])
	if err != nil {
		t.Fatal(err)
	}
	if ext.TCB != tcb || ext.FMSPC != fmspc || p.FMSPC() != fmspc {
		t.Errorf("PCK TCB %+v FMSPC %x (FMSPC() %x); want %+v, %x", ext.TCB, ext.FMSPC, p.FMSPC(), tcb, fmspc)
	}
}

// TestQuoteSignatureCoversBody makes sure each quote is signed over its own body: a changed
// body byte or a body spliced from another quote breaks the signature.
func TestQuoteSignatureCoversBody(t *testing.T) {
	p := create(t, Options{})
	a, b := testBody(), testBody()
	b.Attributes.Flags |= sgx.AttrDebug
	qa, err := p.Quote(a)
	if err != nil {
		t.Fatal(err)
	}
	qb, err := p.Quote(b)
	if err != nil {
		t.Fatal(err)
	}
	spliced := slices.Clone(qa)
	copy(spliced[sgx.HeaderSize:sgx.SignedSize], qb[sgx.HeaderSize:sgx.SignedSize])
	flipped := slices.Clone(qa)
	flipped[sgx.HeaderSize+64] ^= 1 // first byte of MRENCLAVE
	for name, raw := range map[string][]byte{"original": qa, "spliced body": spliced, "flipped MRENCLAVE bit": flipped} {
		q, err := sgx.ParseQuote(raw)
		if err != nil {
			t.Fatal(err)
		}
		att, err := q.AttestationPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := validRS(att, q.SignedBytes(), q.Signature), name == "original"; got != want {
			t.Errorf("%s: signature valid = %v, want %v", name, got, want)
		}
	}
	parsed, err := sgx.ParseQuote(qb)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Body.Debug() {
		t.Error("debug body lost its DEBUG attribute in the quote")
	}
}

func TestQuoteConcurrent(t *testing.T) {
	p := create(t, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 16 {
				body := testBody()
				body.ReportData[0], body.ReportData[1] = byte(g), byte(i)
				raw, err := p.Quote(body)
				if err != nil {
					t.Error(err)
					return
				}
				q, err := sgx.ParseQuote(raw)
				if err != nil {
					t.Error(err)
					return
				}
				if q.Body != body {
					t.Errorf("goroutine %d quote %d: body %x, want %x", g, i, q.Body.ReportData[:2], body.ReportData[:2])
				}
				att, _ := q.AttestationPublicKey()
				verifyRS(t, "concurrent quote", att, q.SignedBytes(), q.Signature)
			}
		})
	}
	wg.Wait()
}

// TestQuoteShapeMatchesRealQuotes compares the layout of a simulated quote with the real quotes
// of testdata/dcap: everything but keys, measurements and certificates must look the same.
func TestQuoteShapeMatchesRealQuotes(t *testing.T) {
	p := create(t, Options{})
	raw, err := p.Quote(testBody())
	if err != nil {
		t.Fatal(err)
	}
	sim, err := sgx.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range dcaptest.Load(t) {
		if v.Quote.ChainOrder == nil || v.Name == "mobilecoin-debug-enclave" { // ends its chain with "\n" only
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			real, err := sgx.ParseQuote(v.File(t, "quote"))
			if err != nil {
				t.Fatal(err)
			}
			if sim.Header.Version != real.Header.Version || sim.Header.AttKeyType != real.Header.AttKeyType ||
				sim.Header.QEVendorID != real.Header.QEVendorID || sim.Header.TEEType != real.Header.TEEType {
				t.Errorf("header %+v does not match the real %+v", sim.Header, real.Header)
			}
			if !bytes.Equal(sim.QEAuthData, real.QEAuthData) {
				t.Errorf("QE auth data %x, real %x", sim.QEAuthData, real.QEAuthData)
			}
			if sim.CertDataType != real.CertDataType || !bytes.Equal(tail(sim.CertData), tail(real.CertData)) {
				t.Errorf("cert data type %d tail %q; real %d tail %q", sim.CertDataType, tail(sim.CertData), real.CertDataType, tail(real.CertData))
			}
			for i, c := range sim.PCKChain {
				if role(c.Subject.CommonName) != role(v.Quote.ChainOrder[i]) {
					t.Errorf("chain[%d] = %q, real %q", i, c.Subject.CommonName, v.Quote.ChainOrder[i])
				}
			}
			if sim.QEReport.Attributes.Flags != real.QEReport.Attributes.Flags || sim.QEReport.ISVProdID != real.QEReport.ISVProdID {
				t.Errorf("QE report flags %#x prodid %d, real %#x %d", sim.QEReport.Attributes.Flags, sim.QEReport.ISVProdID,
					real.QEReport.Attributes.Flags, real.QEReport.ISVProdID)
			}
		})
	}
}

// role is a certificate's place in the PCK chain: its common name without the issuer's brand,
// with both PCK CA types as one.
func role(cn string) string {
	r := strings.TrimPrefix(strings.TrimPrefix(cn, "Intel "), "Cloister Simulated ")
	if strings.HasPrefix(r, "SGX PCK") && strings.HasSuffix(r, " CA") {
		return "SGX PCK CA"
	}
	return r
}

// tail returns the bytes after the last PEM block.
func tail(certData []byte) []byte {
	end := []byte("-----END CERTIFICATE-----")
	return certData[bytes.LastIndex(certData, end)+len(end):]
}

// TestQuoteAllocs keeps Quote at what one ECDSA signature allocates plus the quote buffer.
func TestQuoteAllocs(t *testing.T) {
	p := create(t, Options{})
	body := testBody()
	digest := sha256.Sum256(nil)
	sign := testing.AllocsPerRun(50, func() {
		if _, _, err := ecdsa.Sign(rand.Reader, p.keys.attestation, digest[:]); err != nil {
			t.Fatal(err)
		}
	})
	quote := testing.AllocsPerRun(50, func() {
		if _, err := p.Quote(body); err != nil {
			t.Fatal(err)
		}
	})
	if quote > sign+1 {
		t.Errorf("Quote allocates %.0f times per call and one ECDSA signature %.0f; want at most one more (the quote)", quote, sign)
	}
}

func BenchmarkQuote(b *testing.B) {
	p := create(b, Options{})
	body := testBody()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Quote(body); err != nil {
			b.Fatal(err)
		}
	}
}
