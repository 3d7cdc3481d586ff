package client

import (
	"bytes"
	"crypto/x509"
	"testing"

	"github.com/cloister-dev/cloister/attest"
)

func TestNewWorkloadKey(t *testing.T) {
	k, err := NewWorkloadKey("web")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(k.CSR)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if csr.Subject.CommonName != "web" {
		t.Errorf("CSR common name %q, want web", csr.Subject.CommonName)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.Key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(csr.RawSubjectPublicKeyInfo, spki) || !bytes.Equal(k.SPKI, spki) {
		t.Errorf("the CSR's key, SPKI and Key disagree")
	}
	if k2, _ := NewWorkloadKey("web"); k2.Key.Equal(k.Key) {
		t.Errorf("two workload keys are equal")
	}
}

func TestExpectSimulated(t *testing.T) {
	root := &x509.Certificate{Raw: []byte("root")}
	e := ExpectSimulated(root)
	if e.SGXRoot != root || e.MRSigner == nil || *e.MRSigner != attest.SimCoordinatorSigner || e.ISVProdID != attest.CoordinatorProdID ||
		len(e.MREnclave) != 0 || e.MinISVSVN != 0 || e.AllowDebug {
		t.Errorf("ExpectSimulated = %+v", e)
	}
	e.MRSigner[0] ^= 1
	if *ExpectSimulated(root).MRSigner != attest.SimCoordinatorSigner || attest.SimCoordinatorSigner[0] == e.MRSigner[0] {
		t.Errorf("changing one Expect changed the simulated Coordinator's signer")
	}
}
