package attest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// EncodeCollateral returns the wire form of col: the signed documents and CRLs byte for byte,
// the chains as PEM. Collateral is signed by Intel (or the simulated Intel), so it may travel
// through untrusted hands: the verifier checks it against its pinned root.
func EncodeCollateral(col *verify.Collateral) api.Collateral {
	var out api.Collateral
	if col == nil {
		return out
	}
	if col.TCBInfo != nil {
		out.TCBInfo = col.TCBInfo.Raw()
	}
	if col.QEIdentity != nil {
		out.QEIdentity = col.QEIdentity.Raw()
	}
	out.TCBInfoIssuerChain = chainPEM(col.TCBInfoIssuerChain)
	out.QEIdentityIssuerChain = chainPEM(col.QEIdentityIssuerChain)
	out.PCKCRLIssuerChain = chainPEM(col.PCKCRLIssuerChain)
	if col.RootCACRL != nil {
		out.RootCACRL = col.RootCACRL.Raw
	}
	if col.PCKCRL != nil {
		out.PCKCRL = col.PCKCRL.Raw
	}
	return out
}

func chainPEM(chain []*x509.Certificate) string {
	var b []byte
	for _, c := range chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(b)
}

// DecodeCollateral parses the wire form of collateral. Absent items stay nil; a present item
// that does not parse is an error naming it.
func DecodeCollateral(in *api.Collateral) (*verify.Collateral, error) {
	col := &verify.Collateral{}
	var err error
	if len(in.TCBInfo) > 0 {
		if col.TCBInfo, err = verify.ParseTCBInfo(in.TCBInfo); err != nil {
			return nil, fmt.Errorf("tcb_info: %w", err)
		}
	}
	if len(in.QEIdentity) > 0 {
		if col.QEIdentity, err = verify.ParseQEIdentity(in.QEIdentity); err != nil {
			return nil, fmt.Errorf("qe_identity: %w", err)
		}
	}
	for _, c := range []struct {
		name string
		pem  string
		dst  *[]*x509.Certificate
	}{
		{"tcb_info_issuer_chain", in.TCBInfoIssuerChain, &col.TCBInfoIssuerChain},
		{"qe_identity_issuer_chain", in.QEIdentityIssuerChain, &col.QEIdentityIssuerChain},
		{"pck_crl_issuer_chain", in.PCKCRLIssuerChain, &col.PCKCRLIssuerChain},
	} {
		if c.pem == "" {
			continue
		}
		if *c.dst, err = verify.ParseCertChain([]byte(c.pem)); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	for _, c := range []struct {
		name string
		der  []byte
		dst  **x509.RevocationList
	}{{"root_ca_crl", in.RootCACRL, &col.RootCACRL}, {"pck_crl", in.PCKCRL, &col.PCKCRL}} {
		if len(c.der) == 0 {
			continue
		}
		if *c.dst, err = verify.ParseCRL(c.der); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	if col.QEIdentityIssuerChain == nil && col.QEIdentity != nil {
		col.QEIdentityIssuerChain = col.TCBInfoIssuerChain
	}
	return col, nil
}
