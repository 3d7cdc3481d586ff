package core_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

type benchUser struct {
	cert    *x509.Certificate
	certPEM string
	key     crypto.Signer
}

func newBenchUser(b *testing.B, serial int64) *benchUser {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprint("u", serial)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &benchUser{cert: c, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// benchGoverned starts a Coordinator whose manifest (the activation benchmark's, with n updaters
// and update_threshold k) is set, and returns it with the updaters and the manifest.
func benchGoverned(b *testing.B, n, k int) (*coordtest.Coordinator, []*benchUser, []byte) {
	tc := coordtest.Start(b)
	var us []*benchUser
	users := ""
	for i := range n {
		u := newBenchUser(b, int64(i+1))
		us = append(us, u)
		if i > 0 {
			users += ","
		}
		users += fmt.Sprintf(`"u%d": {"certificate": %q, "roles": ["admin"]}`, i, u.certPEM)
	}
	raw := fmt.Appendf(nil, `{"packages": %s, "users": {%s}, "roles": {"admin": {"resource": "manifest", "actions": ["update"]}}, "governance": {"update_threshold": %d}}`,
		`{"bench": {"mrenclave": "`+fmt.Sprintf("%x", loadgen.BenchMREnclave)+`"}}`, users, k)
	if _, err := tc.Core.SetManifest(b.Context(), nil, raw); err != nil {
		b.Fatal(err)
	}
	return tc, us, raw
}

// BenchmarkApprove measures one approval that does not reach the threshold: authentication,
// loading the pending update, the ECDSA signature check and the durable store transaction.
func BenchmarkApprove(b *testing.B) {
	tc, us, raw := benchGoverned(b, 3, 3)
	c, ctx := tc.Core, b.Context()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p, err := c.ProposeManifest(ctx, us[0].cert, raw)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := client.SignApproval(us[1].key, p)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := c.ApproveManifest(ctx, us[1].cert, p.ID, p.Digest, sig); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := c.CancelManifest(ctx, us[0].cert, p.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkApply measures the approval that reaches the threshold and applies the update: the
// above, plus parsing and checking the manifest, a new intermediate CA and the transaction that
// stores the new version.
func BenchmarkApply(b *testing.B) {
	tc, us, raw := benchGoverned(b, 3, 1)
	c, ctx := tc.Core, b.Context()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p, err := c.ProposeManifest(ctx, us[0].cert, raw)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := client.SignApproval(us[1].key, p)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := c.ApproveManifest(ctx, us[1].cert, p.ID, p.Digest, sig)
		if err != nil || !r.Applied {
			b.Fatalf("%+v, %v", r, err)
		}
	}
}
