package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stdlibTBS returns the TBSCertificate crypto/x509.CreateCertificate makes
// for what IssueLeaf documents, with the given serial and validity.
func stdlibTBS(t testing.TB, ca *CA, pub crypto.PublicKey, cfg LeafConfig, serial []byte, notBefore, notAfter time.Time) ([]byte, error) {
	t.Helper()
	usage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	if cfg.IsCA {
		usage |= x509.KeyUsageCertSign
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               subject(cfg.CommonName, ca.Cert.Subject.Organization, IsSimulation(ca.Cert)),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  cfg.IsCA,
		MaxPathLenZero:        cfg.IsCA,
		DNSNames:              cfg.DNSNames,
		IPAddresses:           cfg.IPAddresses,
		URIs:                  cfg.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the stdlib certificate: %v", err)
	}
	return c.RawTBSCertificate, nil
}

func TestLeafMatchesCreateCertificate(t *testing.T) {
	keys := map[string]crypto.Signer{}
	for _, alg := range []string{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyEd25519} {
		keys[alg] = testKey(t, alg)
	}
	id, _ := SPIFFEID("cloister.internal", "workload/web")
	manyNames := make([]string, 40) // forces multi-byte DER lengths
	for i := range manyNames {
		manyNames[i] = fmt.Sprintf("replica-%02d.web.default.svc.cluster.local", i)
	}
	tests := []struct {
		name string
		cfg  LeafConfig
	}{
		{"no names", LeafConfig{}},
		{"common name only", LeafConfig{CommonName: "web"}},
		{"SANs without subject name", LeafConfig{DNSNames: []string{"web"}}},
		{"everything", LeafConfig{
			CommonName:  "web",
			DNSNames:    []string{"web", "web.default.svc"},
			IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1), net.ParseIP("fd00::1"), net.IP{192, 168, 0, 1}},
			URIs:        []*url.URL{id},
		}},
		{"UTF-8 common name", LeafConfig{CommonName: "wéb"}},
		{"asterisk common name", LeafConfig{CommonName: "*.web"}},
		{"CA", LeafConfig{CommonName: "secret CA", IsCA: true}},
		{"many names", LeafConfig{CommonName: "web", DNSNames: manyNames}},
	}
	times := []struct {
		name                string
		notBefore, notAfter time.Time
	}{
		{"UTCTime", testNow.Add(-Backdate), testNow.Add(24 * time.Hour)},
		{"sub-second", testNow.Add(123456789 * time.Nanosecond), testNow.Add(time.Hour + 987654321)},
		{"GeneralizedTime", testNow, time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	for _, simulation := range []bool{false, true} {
		_, inter := newTestChain(t, simulation)
		for _, tc := range tests {
			for alg, key := range keys {
				for _, tm := range times {
					t.Run(fmt.Sprintf("%s/%s/%s/sim=%v", tc.name, alg, tm.name, simulation), func(t *testing.T) {
						serial := newSerial().Bytes()
						got, err := leafTBS(inter.Cert, key.Public(), tc.cfg, serial, tm.notBefore, tm.notAfter)
						if err != nil {
							t.Fatalf("leafTBS: %v", err)
						}
						want, err := stdlibTBS(t, inter, key.Public(), tc.cfg, serial, tm.notBefore, tm.notAfter)
						if err != nil {
							t.Fatalf("CreateCertificate: %v", err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("leafTBS differs from CreateCertificate:\n got %x\nwant %x", got, want)
						}
					})
				}
			}
		}
	}
}

func TestLeafSANErrors(t *testing.T) {
	_, inter := newTestChain(t, false)
	key, _ := GenerateKey(KeyECDSAP256)
	tests := []struct {
		name    string
		cfg     LeafConfig
		wantErr string
	}{
		{"non-ASCII DNS name", LeafConfig{DNSNames: []string{"wéb"}}, `DNS name "wéb" has a non-ASCII byte at 1`},
		{"bad IP length", LeafConfig{IPAddresses: []net.IP{{1, 2, 3}}}, "IP address of 3 bytes"},
		{"nil URI", LeafConfig{URIs: []*url.URL{nil}}, "nil URI"},
		{"non-UTF-8 common name", LeafConfig{CommonName: "\xff"}, "encoding subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inter.IssueLeaf(key.Public(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("IssueLeaf error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestIssueLeafCAKey(t *testing.T) {
	root, inter := newTestChain(t, false)
	leafKey, _ := GenerateKey(KeyECDSAP256)
	rsaKey, _ := GenerateKey(KeyRSA2048)
	tests := []struct {
		name    string
		ca      *CA
		wantErr string
	}{
		{"RSA CA key", &CA{Cert: inter.Cert, Key: rsaKey}, "CA key is *rsa.PublicKey, expected ECDSA P-256"},
		{"key of another CA", &CA{Cert: inter.Cert, Key: root.Key}, "does not match the public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.ca.IssueLeaf(leafKey.Public(), LeafConfig{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("IssueLeaf error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestDERBuilderLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			content := bytes.Repeat([]byte{0xab}, n)
			var b derBuilder
			b = append(b, 0xee) // a prefix must stay intact
			b.add(tagOctetString, content)
			want, err := asn1.Marshal(content)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, append([]byte{0xee}, want...)) {
				t.Fatalf("derBuilder encoding of %d bytes differs from encoding/asn1", n)
			}
		})
	}
}

// FuzzLeafTBS: for any names, the direct encoder and CreateCertificate agree
// byte for byte, or both fail.
func FuzzLeafTBS(f *testing.F) {
	root, err := NewRoot(RootConfig{TrustDomain: "cloister.internal", Now: testNow})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := GenerateKey(KeyECDSAP256)
	f.Add("web", "web.default.svc", []byte{127, 0, 0, 1}, "workload/web", false, int64(3600))
	f.Add("", "", []byte{}, "", true, int64(0))
	f.Add("wéb*&", "x", []byte(net.IPv6loopback), "a", false, int64(1<<40))
	f.Fuzz(func(t *testing.T, cn, dns string, ip []byte, path string, isCA bool, seconds int64) {
		cfg := LeafConfig{CommonName: cn, IsCA: isCA}
		if dns != "" {
			cfg.DNSNames = []string{dns}
		}
		if len(ip) == net.IPv4len || len(ip) == net.IPv6len {
			cfg.IPAddresses = []net.IP{ip}
		}
		if path != "" {
			cfg.URIs = []*url.URL{{Scheme: "spiffe", Host: "cloister.internal", Path: "/" + path}}
		}
		notBefore := testNow
		notAfter := notBefore.Add(time.Duration(seconds%(1<<33)) * time.Second)
		serial := newSerial().Bytes()
		got, gotErr := leafTBS(root.Cert, key.Public(), cfg, serial, notBefore, notAfter)
		want, wantErr := stdlibTBS(t, root, key.Public(), cfg, serial, notBefore, notAfter)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("leafTBS error %v, CreateCertificate error %v", gotErr, wantErr)
		}
		if gotErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("leafTBS differs from CreateCertificate:\n got %x\nwant %x", got, want)
		}
	})
}
