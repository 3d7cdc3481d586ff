package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// A certificate secret a user could read under an earlier manifest stays valid under the root
// every workload trusts: a later manifest must not give a workload a name it carries.
func TestEarlierCertificateSecretBlocksWorkloadName(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["cert"] = map[string]any{"type": "certificate", "dns": []string{"*.shop.example"}}
	}))
	old := f.readAll("cert")["cert"]
	withDB := func(dns string) []byte {
		return testManifest(t, func(m map[string]any) {
			m["workloads"].(map[string]any)["db"] = map[string]any{"package": "signed", "tls": map[string]any{"dns": []string{dns}}}
			m["secrets"].(map[string]any)["cert"] = map[string]any{"type": "certificate", "dns": []string{"www.example"}}
		})
	}
	_, err := f.c.SetManifest(t.Context(), as(t, "admin"), withDB("db.shop.example"))
	wantError(t, err, api.CodeManifestInvalid, "issued under an earlier manifest version is still valid", `"db.shop.example"`, "valid until")
	if _, v, _ := f.c.Manifest(); v != 1 {
		t.Fatalf("manifest version %d after the refusal, want 1", v)
	}
	// Names the old certificate does not cover are fine; the record survives the update, so the
	// name stays blocked in later versions too.
	f.setManifest("admin", withDB("db.other.example"))
	_, err = f.c.SetManifest(t.Context(), as(t, "admin"), withDB("db.shop.example"))
	wantError(t, err, api.CodeManifestInvalid, "issued under an earlier manifest version")
	// The old certificate really would verify as that name under the root.
	certs, err := pki.ParseCertsPEM([]byte(old.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.c.Root())
	inters.AddCert(certs[1])
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: "db.shop.example", Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("the premise fails: the old certificate does not verify as db.shop.example: %v", err)
	}
	f.reopen() // the records are in the store, not only in memory
	_, err = f.c.SetManifest(t.Context(), as(t, "admin"), withDB("db.shop.example"))
	wantError(t, err, api.CodeManifestInvalid, "issued under an earlier manifest version")
}

// blockingVerifier holds the first Verify until release is closed, as a host that slows the
// collateral fetch would.
type blockingVerifier struct {
	EvidenceVerifier
	entered, release chan struct{}
	once             sync.Once
}

func (v *blockingVerifier) Verify(ctx context.Context, q []byte, at time.Time) (*verify.Result, *verify.Collateral, error) {
	v.once.Do(func() { close(v.entered); <-v.release })
	return v.EvidenceVerifier.Verify(ctx, q, at)
}

// An activation that was verifying evidence while a manifest update raised min_isvsvn above the
// enclave's is refused: it is judged by the manifest in force when it is admitted.
func TestActivationAcrossManifestUpdate(t *testing.T) {
	for _, workload := range []string{"web", "limited"} { // the path without and with a store batch
		t.Run(workload, func(t *testing.T) {
			f := newFixture(t)
			f.setManifest("", testManifest(t, nil))
			bv := &blockingVerifier{EvidenceVerifier: f.c.cfg.Verifier, entered: make(chan struct{}), release: make(chan struct{})}
			f.c.cfg.Verifier = bv
			done := make(chan error, 1)
			go func() {
				_, err := f.activate(newRequest(t, workload, "old-svn", goodBody()))
				done <- err
			}()
			<-bv.entered
			f.setManifest("admin", testManifest(t, func(m map[string]any) {
				m["packages"].(map[string]any)["signed"].(map[string]any)["min_isvsvn"] = 4 // the enclave has 3
			}))
			close(bv.release)
			wantError(t, <-done, api.CodeNotReady, "the manifest changed from version 1")
			_, err := f.activate(newRequest(t, workload, "old-svn", goodBody()))
			wantError(t, err, api.CodePolicy, "isvsvn 3")
			if n := f.c.ActivationCounts()[workload]; n != 0 {
				t.Errorf("count %d, want 0", n)
			}
		})
	}
}

// A manifest whose updaters all hold certificates outside their validity would lock everyone
// out for good.
func TestManifestWithoutValidUpdaterRefused(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "admin"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	expiredPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	_, err = f.c.SetManifest(t.Context(), as(t, "admin"), testManifest(t, func(m map[string]any) {
		m["users"].(map[string]any)["admin"] = map[string]any{"certificate": expiredPEM, "roles": []string{"manifest-admin", "writer"}}
	}))
	wantError(t, err, api.CodeManifestInvalid, "no user with the manifest update role has a certificate valid now (admin: expired at")
	// A manifest without any updater is a deliberate choice.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["users"].(map[string]any)["admin"] = map[string]any{"certificate": user(t, "admin").certPEM, "roles": []string{"writer"}}
	}))
}
