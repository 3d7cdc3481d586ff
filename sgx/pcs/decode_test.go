package pcs

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
)

// realFile reads a file of the Phala vector (a complete Intel collateral set).
func realFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dcaptest.Root(), "phala-processor-config-swhardening", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// percentEncodeAll escapes every byte that is not unreserved, as Intel's services do.
func percentEncodeAll(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestDecodeIssuerChainForms(t *testing.T) {
	chainPEM := string(realFile(t, "pck_crl_issuer_chain.pem"))
	for name, header := range map[string]string{
		"every reserved byte escaped": percentEncodeAll(chainPEM),
		"path escaped":                url.PathEscape(chainPEM),
		"query escaped (+ for space)": url.QueryEscape(chainPEM),
	} {
		chain, err := decodeIssuerChain(header)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(chain) != 2 || chain[0].Subject.CommonName != "Intel SGX PCK Processor CA" || chain[1].Subject.CommonName != "Intel SGX Root CA" {
			t.Errorf("%s: chain %v; want the PCK Processor CA and the root", name, chain)
		}
	}
	for name, header := range map[string]string{
		"bad escape":  "%ZZ" + url.PathEscape(chainPEM),
		"not PEM":     "hello",
		"empty":       "",
		"too long":    strings.Repeat("A", MaxHeaderSize+1),
		"cut in half": url.PathEscape(chainPEM[:len(chainPEM)/2]),
	} {
		if chain, err := decodeIssuerChain(header); err == nil {
			t.Errorf("%s: decoded %d certificates; want an error", name, len(chain))
		}
	}
}

func TestDecodeCRLForms(t *testing.T) {
	der := realFile(t, "pck_crl.der")
	pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	for name, body := range map[string][]byte{
		"DER":                der,
		"PEM":                pemCRL,
		"PEM with CRLF":      bytes.ReplaceAll(pemCRL, []byte("\n"), []byte("\r\n")),
		"hex":                []byte(hex.EncodeToString(der)),
		"hex with spaces":    []byte("  " + hex.EncodeToString(der) + "\r\n"),
		"hex of PEM":         []byte(hex.EncodeToString(pemCRL)),
		"upper-case hex":     []byte(strings.ToUpper(hex.EncodeToString(der))),
		"DER, real root CRL": realFile(t, "root_ca_crl.der"),
	} {
		crl, err := decodeCRL(body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name != "DER, real root CRL" && !bytes.Equal(crl.Raw, der) {
			t.Errorf("%s: decoded another CRL", name)
		}
	}
	for name, body := range map[string][]byte{
		"odd hex":       []byte(hex.EncodeToString(der)[1:]),
		"trailing DER":  append(bytes.Clone(der), 0),
		"leading space": append([]byte(" "), der...),
		"certificate":   realFile(t, "pck_crl_issuer_chain.pem"),
		"empty":         nil,
	} {
		if _, err := decodeCRL(body); err == nil {
			t.Errorf("%s: decoded; want an error", name)
		}
	}
}

// FuzzDecode feeds issuer-chain headers and CRL bodies to the decoders: they must never panic,
// and whatever they accept must survive re-encoding unchanged.
func FuzzDecode(f *testing.F) {
	chainPEM := string(realFile(f, "tcb_info_issuer_chain.pem"))
	der := realFile(f, "pck_crl.der")
	pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	f.Add(url.PathEscape(chainPEM), der)
	f.Add(url.QueryEscape(chainPEM), pemCRL)
	f.Add(percentEncodeAll(chainPEM), []byte(hex.EncodeToString(der)))
	f.Add(chainPEM, []byte(hex.EncodeToString(pemCRL)))
	f.Add("%", realFile(f, "root_ca_crl.der"))
	f.Add("+", []byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if chain, err := decodeIssuerChain(header); err == nil {
			if len(chain) == 0 {
				t.Fatal("decoded an empty chain without error")
			}
			var b bytes.Buffer
			for _, c := range chain {
				pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
			}
			again, err := decodeIssuerChain(percentEncodeAll(b.String()))
			if err != nil || !sameCerts(chain, again) {
				t.Fatalf("re-encoded chain does not decode to itself: %v", err)
			}
		}
		if crl, err := decodeCRL(body); err == nil {
			again, err := decodeCRL(crl.Raw)
			if err != nil || !bytes.Equal(again.Raw, crl.Raw) {
				t.Fatalf("the DER of a decoded CRL does not decode to itself: %v", err)
			}
		}
	})
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
