package e2etest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// User is a manifest user: a self-signed client certificate and its key, in memory and on disk.
type User struct {
	Name string
	// CertPEM is the certificate as the manifest's users.<name>.certificate holds it.
	CertPEM string
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// CertFile and KeyFile hold the certificate and its PKCS #8 key, in PEM.
	CertFile, KeyFile string
	// TLS is the certificate and key for a TLS client.
	TLS tls.Certificate
}

// Flags are the CLI flags that make the CLI act as u.
func (u *User) Flags() []string { return []string{"--cert", u.CertFile, "--key", u.KeyFile} }

// NewUser makes a user's P-256 key and a self-signed client certificate for name (its
// common name), valid from an hour ago for a day, and writes them to users/<name>.crt and
// users/<name>.key below the Env's directory.
func (e *Env) NewUser(t testing.TB, name string) *User {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Name: name, CertFile: e.Path("users", name+".crt"), KeyFile: e.Path("users", name+".key")}
	u.CertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	WriteFile(t, u.CertFile, []byte(u.CertPEM), 0o644)
	WriteFile(t, u.KeyFile, keyPEM, 0o600)
	if u.TLS, err = tls.X509KeyPair([]byte(u.CertPEM), keyPEM); err != nil {
		t.Fatal(err)
	}
	u.Cert = u.TLS.Leaf
	return u
}
