package sgx_test

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestPCKExtensionsVectors(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			q, err := sgx.ParseQuote(v.File(t, "quote"))
			if err != nil {
				t.Fatal(err)
			}
			leaf := q.PCKChain[0]
			e, err := sgx.ParsePCKExtensions(leaf)
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "fmspc", e.FMSPC[:], v.PCK.FMSPC)
			checkHex(t, "pceid", e.PCEID[:], v.PCK.PCEID)
			checkHex(t, "ppid", e.PPID[:], v.PCK.PPID)
			checkHex(t, "cpusvn", e.TCB.CPUSVN[:], v.PCK.CPUSVN)
			checkInt(t, "pcesvn", int(e.TCB.PCESVN), v.PCK.PCESVN)
			checkInt(t, "sgx type", int(e.SGXType), v.PCK.SGXType)
			for i, svn := range v.PCK.TCBCompSVNs {
				checkInt(t, "comp svn", int(e.TCB.CompSVN[i]), svn)
			}
			if v.PCK.PlatformInstanceID != nil {
				checkHex(t, "platform instance id", e.PlatformInstanceID, *v.PCK.PlatformInstanceID)
			} else if e.PlatformInstanceID != nil {
				t.Errorf("platform instance id = %x, want none", e.PlatformInstanceID)
			}
			if c := v.PCK.Configuration; c != nil {
				if e.Configuration == nil || *e.Configuration.DynamicPlatform != c.DynamicPlatform ||
					*e.Configuration.CachedKeys != c.CachedKeys || *e.Configuration.SMTEnabled != c.SMTEnabled {
					t.Errorf("configuration = %+v, want %+v", e.Configuration, c)
				}
			}
			ca, err := sgx.PCKCATypeOf(leaf.Issuer.CommonName)
			if err != nil || string(ca) != v.PCK.CAType {
				t.Errorf("PCKCATypeOf(%q) = %q, %v; want %q", leaf.Issuer.CommonName, ca, err, v.PCK.CAType)
			}
			// Intel encodes entries in the same order as Marshal, so the bytes round-trip.
			raw := extValue(t, leaf.Extensions)
			enc, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) {
				t.Errorf("Marshal does not reproduce the certificate's extension:\n got %x\nwant %x", enc, raw)
			}
		})
	}
}

func extValue(t *testing.T, exts []pkix.Extension) []byte {
	t.Helper()
	for _, x := range exts {
		if x.Id.Equal(sgx.OIDSGXExtensions) {
			return x.Value
		}
	}
	t.Fatal("no SGX extension")
	return nil
}

func TestPCKExtensionErrors(t *testing.T) {
	good := &sgx.PCKExtensions{FMSPC: [6]byte{0, 0x60, 0x6a}, SGXType: sgx.SGXTypeScalable}
	enc, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "expected one DER SEQUENCE"},
		{"trailing", append(bytes.Clone(enc), 0), "expected one DER SEQUENCE"},
		{"huge", make([]byte, 5000), "larger than the 4096 allowed"},
		{"empty sequence", []byte{0x30, 0}, "required entry PPID"},
		{"not an entry", []byte{0x30, 2, 5, 0}, "expected a SEQUENCE { OID, value } entry"},
		{"short fmspc", oneEntry(sgx.OIDSGXExtensions, 4, octets(5)), "FMSPC: expected 6 bytes, found 5"},
		{"fmspc not octets", oneEntry(sgx.OIDSGXExtensions, 4, []byte{2, 1, 0}), "FMSPC: expected an OCTET STRING"},
		{"sgx type range", oneEntry(sgx.OIDSGXExtensions, 5, []byte{0x0a, 2, 1, 0}), "SGX type: expected an ENUMERATED value 0..255"},
		{"duplicate", append2(oneEntry(sgx.OIDSGXExtensions, 4, octets(6)), oneEntry(sgx.OIDSGXExtensions, 4, octets(6))), "appears twice"},
		{"tcb missing comp", oneEntry(sgx.OIDSGXExtensions, 2, []byte{0x30, 0}), "TCB: required entry"},
		{"ppid long", oneEntry(sgx.OIDSGXExtensions, 1, octets(17)), "PPID: expected 16 bytes, found 17"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sgx.ParsePCKExtensionValue(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// oneEntry encodes SEQUENCE { SEQUENCE { base.arc, value } }.
func oneEntry(base asn1.ObjectIdentifier, arc int, value []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(append(slices.Clone(base), arc))
			b.AddBytes(value)
		})
	})
	return b.BytesOrPanic()
}

// append2 joins the entries of two single-entry extensions.
func append2(a, b []byte) []byte {
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(o *cryptobyte.Builder) {
		o.AddBytes(a[2:])
		o.AddBytes(b[2:])
	})
	return out.BytesOrPanic()
}

func octets(n int) []byte { return append([]byte{4, byte(n)}, make([]byte, n)...) }

func TestPCKExtensionsRoundTrip(t *testing.T) {
	yes, no := true, false
	e := &sgx.PCKExtensions{
		PPID:               [16]byte{1, 2, 3},
		TCB:                sgx.PCKTCB{CompSVN: [16]byte{12, 12, 3, 3, 255, 255, 1}, PCESVN: 13, CPUSVN: [16]byte{9}},
		PCEID:              [2]byte{0, 1},
		FMSPC:              [6]byte{0, 0x60, 0x6a, 0, 0, 0},
		SGXType:            sgx.SGXTypeScalable,
		PlatformInstanceID: bytes.Repeat([]byte{7}, 16),
		Configuration:      &sgx.PlatformConfiguration{DynamicPlatform: &yes, CachedKeys: &no, SMTEnabled: &yes},
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := sgx.ParsePCKExtensionValue(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(e, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func FuzzParsePCKExtensionValue(f *testing.F) {
	for _, v := range dcaptest.Load(f) {
		q, err := sgx.ParseQuote(v.File(f, "quote"))
		if err != nil {
			f.Fatal(err)
		}
		for _, x := range q.PCKChain[0].Extensions {
			if x.Id.Equal(sgx.OIDSGXExtensions) {
				f.Add(x.Value)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := sgx.ParsePCKExtensionValue(b)
		if err != nil {
			return
		}
		enc, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed extension does not marshal: %v", err)
		}
		e2, err := sgx.ParsePCKExtensionValue(enc)
		if err != nil {
			t.Fatalf("marshalled extension does not parse: %v", err)
		}
		if d := cmp.Diff(e, e2); d != "" {
			t.Fatalf("round trip differs:\n%s", d)
		}
	})
}
