package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"time"
)

// reasonKeyCompromise is the RFC 5280 CRL reason Intel gives its revoked PCK certificates.
const reasonKeyCompromise = 1

// decoyRevoked is how many unrelated serials the PCK CRL always lists, so that a verifier that
// treats any non-empty CRL as a revocation is caught.
const decoyRevoked = 2

// WriteCollateral writes a complete collateral directory for p into dir, creating dir if
// needed: TCB Info, QE Identity, both CRLs and the three issuer chains, signed by p's simulated
// PKI, plus README-SIMULATION.txt. Quotes from p verify against it like against the platform's
// own collateral, with the outcome c describes (see [CollateralOptions]; its zero IssueDate
// means time.Now()). Each file is replaced atomically; other files in dir are left alone.
// Writing into p's own directory replaces the platform's collateral.
func (p *Platform) WriteCollateral(dir string, c CollateralOptions) error {
	c, err := c.withDefaults(time.Now(), DefaultCollateralValidity)
	if err != nil {
		return err
	}
	if err := p.loadSigners(); err != nil {
		return fmt.Errorf("write collateral: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write collateral: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write collateral: %w", err)
	}
	defer root.Close()
	if err := p.writeCollateral(root, &c); err != nil {
		return fmt.Errorf("write collateral to %s: %w", dir, err)
	}
	return nil
}

// writeCollateral writes the collateral files for c (already defaulted) below root.
func (p *Platform) writeCollateral(root *os.Root, c *CollateralOptions) error {
	tcbInfo, err := marshalTCBInfo(p.ext.FMSPC, p.ext.PCEID, p.ext.TCB, c, p.keys.tcbSigning)
	if err != nil {
		return fmt.Errorf("TCB Info: %w", err)
	}
	qeIdentity, err := marshalQEIdentity(p.qe, c, p.keys.tcbSigning)
	if err != nil {
		return fmt.Errorf("QE Identity: %w", err)
	}
	var rootRevoked, pckRevoked []*big.Int
	if c.RevokePCKCA {
		rootRevoked = append(rootRevoked, p.certs.pckCA.SerialNumber)
	}
	for i := range decoyRevoked {
		pckRevoked = append(pckRevoked, decoySerial(i))
	}
	if c.RevokePCK {
		pckRevoked = append(pckRevoked, p.certs.pck.SerialNumber)
	}
	rootCRL, err := crl(p.certs.root, p.keys.root, rootRevoked, c)
	if err != nil {
		return fmt.Errorf("root CA CRL: %w", err)
	}
	pckCRL, err := crl(p.certs.pckCA, p.keys.pckCA, pckRevoked, c)
	if err != nil {
		return fmt.Errorf("PCK CRL: %w", err)
	}
	tcbChain := pemCerts(p.certs.tcbSigning, p.certs.root)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{fileReadme, []byte(readme)},
		{fileTCBInfo, tcbInfo},
		{fileTCBInfoChain, tcbChain},
		{fileQEIdentity, qeIdentity},
		{fileQEIdentityChain, tcbChain},
		{fileRootCACRL, rootCRL},
		{filePCKCRL, pckCRL},
		{filePCKCRLIssuerChain, pemCerts(p.certs.pckCA, p.certs.root)},
	} {
		if err := writeFile(root, f.name, f.data, publicPerm); err != nil {
			return err
		}
	}
	return nil
}

// crl returns a DER CRL issued by issuer, valid over c's dates, revoking serials at the issue
// date for key compromise, shaped like Intel's (CRL number 1, authority key ID).
func crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, serials []*big.Int, c *CollateralOptions) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, len(serials))
	for i, s := range serials {
		entries[i] = x509.RevocationListEntry{SerialNumber: s, RevocationTime: c.IssueDate, ReasonCode: reasonKeyCompromise}
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                c.IssueDate,
		NextUpdate:                c.NextUpdate,
		RevokedCertificateEntries: entries,
	}, issuer, key)
}

// decoySerial is the i-th unrelated revoked serial of the PCK CRL: 20 bytes, fixed, and with
// overwhelming probability not a serial this package ever issues.
func decoySerial(i int) *big.Int {
	sum := sha256.Sum256(fmt.Appendf(nil, "cloister-sim-decoy-revoked-%d", i))
	sum[0] = sum[0]&0x3f | 0x40
	return new(big.Int).SetBytes(sum[:20])
}
