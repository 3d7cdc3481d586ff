package core

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/store"
)

// again is r sent again by the same enclave instance: the same CSR key, on a new connection
// (exporter) with a new quote, as a launcher retries after a lost answer.
func again(t *testing.T, r *request) *request {
	t.Helper()
	n := &request{key: r.key, spki: r.spki, req: &api.ActivationRequest{Workload: r.req.Workload, Instance: r.req.Instance, CSR: r.req.CSR}}
	rand.Read(n.exporter[:])
	n.req.Quote = quote(t, goodBody(), attest.ActivationReportData(n.spki, n.exporter))
	return n
}

// TestRetriedActivationCountedOnce: a limited activation retried with the same key (its answer
// was lost) is admitted again without using up max_activations, also after a restart; a new key
// is a new activation and meets the limit.
func TestRetriedActivationCountedOnce(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	first := newRequest(t, "limited", "l1", goodBody())
	if _, err := f.activate(first); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i == 2 {
			f.reopen()
		}
		resp, err := f.activate(again(t, first))
		if err != nil {
			t.Fatalf("retry %d of a counted activation: %v", i+1, err)
		}
		certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
		if err != nil {
			t.Fatal(err)
		}
		if spki, _ := x509.MarshalPKIXPublicKey(certs[0].PublicKey); !bytes.Equal(spki, first.spki) {
			t.Fatalf("retry %d: the certificate is not for the retried key", i+1)
		}
	}
	if counts := f.c.ActivationCounts(); counts["limited"] != 1 {
		t.Errorf("activation counts %v after 3 retries; want limited: 1", counts)
	}
	_, err := f.activate(newRequest(t, "limited", "l1", goodBody()))
	wantError(t, err, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`)
	// The counted key asking as another instance is a new activation, not a retry.
	other := again(t, first)
	other.req.Instance = "l2"
	_, err = f.activate(other)
	wantError(t, err, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`)
	// Past the window the key is forgotten: a retry that late counts as a new activation, and
	// here meets the limit (it is never exceeded either way).
	f.now = f.now.Add(2 * retryWindow)
	_, err = f.activate(again(t, first))
	wantError(t, err, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`)
	// Unlimited workloads record no keys: the bucket holds one entry, the limited workload's.
	f.mustActivate("web", "w1")
	n := 0
	if err := f.db.View(t.Context(), func(tx *store.Tx) error {
		return tx.ForEach(bucketRecentKeys, func(string, []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d recent-key entries, want 1", n)
	}
}
