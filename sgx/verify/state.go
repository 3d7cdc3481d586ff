package verify

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// pckState is a verified PCK chain: immutable once built, shared by the quotes that carry it.
type pckState struct {
	chain    []*x509.Certificate // leaf, CA, root: shared by every quote that carries them
	leaf, ca *x509.Certificate
	leafKey  *ecdsa.PublicKey
	ext      *sgx.PCKExtensions
	caType   sgx.PCKCAType
	leafHash [32]byte // SHA-256 of the leaf's DER
	caHash   [32]byte
	validity []Validity
}

// pck returns the verified PCK chain of a quote, from the cache (keyed by the certification
// data) or by verifying the chain ParseQuote parsed from that data. q must have been parsed by
// this package, so that the Verifier owns its certificates.
func (v *Verifier) pck(q *sgx.Quote) (*pckState, error) {
	key := sha256.Sum256(q.CertData)
	if s, ok := v.pcks.get(key); ok {
		return s, nil
	}
	chain := q.PCKChain
	if err := v.verifyChain(chain, pckChainSpec); err != nil {
		return nil, fail(CheckPCKChain, err)
	}
	s := &pckState{chain: chain, leaf: chain[0], ca: chain[1]}
	var err error
	if s.leafKey, err = p256Key(s.leaf); err != nil {
		return nil, fail(CheckPCKCertificate, err)
	}
	if s.ext, err = sgx.ParsePCKExtensions(s.leaf); err != nil {
		return nil, fail(CheckPCKCertificate, err)
	}
	if s.caType, err = sgx.PCKCATypeOf(s.leaf.Issuer.CommonName); err != nil {
		return nil, fail(CheckPCKCertificate, err)
	}
	s.leafHash = sha256.Sum256(s.leaf.Raw)
	s.caHash = sha256.Sum256(s.ca.Raw)
	s.validity = chainValidity(chain, "pck_certificate", "pck_ca_certificate", "root_ca_certificate")
	v.pcks.put(key, s)
	return s, nil
}

// colState is collateral checked on its own (without a quote): immutable once built and cached
// by the collateral's fingerprint. Failed checks are kept in order of the verification, so that
// Verify reports the first one at its place among the quote's checks.
type colState struct {
	rootCRL, pckCRL *x509.RevocationList
	pckCRLHash      [32]byte
	pckCRLIssuer    *x509.Certificate    // verified first certificate of the PCK CRL issuer chain
	revokedByRoot   map[string]time.Time // serial → revocation time
	revokedByPCKCRL map[string]time.Time
	crlErr          error // first failed CRL check

	tcbInfo     *TCBInfo // nil unless present and verified
	qeIdentity  *QEIdentity
	identityErr error // first failed TCB Info or QE Identity check

	missing    []string // absent items Verify needs: tcb_info, qe_identity and their chains
	validity   []Validity
	evalNumber int
}

// collateral returns the checked state of col, from the cache or by checking it.
func (v *Verifier) collateral(col *Collateral) *colState {
	if col == nil {
		col = &Collateral{}
	}
	key := col.fingerprint()
	if s, ok := v.collaterals.get(key); ok {
		return s
	}
	s := v.buildColState(col)
	v.collaterals.put(key, s)
	return s
}

// buildColState parses every item of col again from its raw bytes (so that the state depends
// on those bytes only) and checks CRLs, chains and signatures.
func (v *Verifier) buildColState(col *Collateral) *colState {
	s := &colState{}
	seen := map[string]*x509.Certificate{}
	tcbChain, err1 := reparseChain(col.TCBInfoIssuerChain, seen)
	qeChain, err2 := reparseChain(col.QEIdentityIssuerChain, seen)
	if col.QEIdentityIssuerChain == nil {
		qeChain = tcbChain
	}
	crlChain, err3 := reparseChain(col.PCKCRLIssuerChain, seen)
	s.crlErr = firstErr(
		s.checkRootCRL(v, col.RootCACRL),
		wrapCheck(CheckPCKCRL, err3),
		s.checkPCKCRL(v, col.PCKCRL, crlChain),
	)
	if s.crlErr == nil && s.rootCRL != nil {
		s.crlErr = s.checkRevokedByRoot(crlChain, tcbChain, qeChain)
	}

	var tcbInfo *TCBInfo
	var qeIdentity *QEIdentity
	var err4, err5 error
	if col.TCBInfo != nil {
		tcbInfo, err4 = reparse(col.TCBInfo.body, parseTCBInfo)
	}
	if col.QEIdentity != nil {
		qeIdentity, err5 = reparse(col.QEIdentity.body, parseQEIdentity)
	}
	s.identityErr = firstErr(
		wrapCheck(CheckTCBInfoIssuerChain, err1),
		wrapCheck(CheckTCBInfoSignature, err4),
		s.checkTCBInfo(v, tcbInfo, tcbChain),
		wrapCheck(CheckQEIdentityIssuerChain, err2),
		wrapCheck(CheckQEIdentitySignature, err5),
		s.checkQEIdentity(v, qeIdentity, qeChain),
	)
	if s.identityErr != nil {
		s.tcbInfo, s.qeIdentity = nil, nil
	}

	if s.rootCRL != nil {
		s.validity = append(s.validity, crlValidity("root_ca_crl", s.rootCRL))
	}
	if s.pckCRL != nil {
		s.validity = append(s.validity, crlValidity("pck_crl", s.pckCRL))
	}
	s.validity = append(s.validity, chainValidity(crlChain, "pck_crl_issuer_certificate", "root_ca_certificate")...)
	if tcbInfo != nil {
		s.validity = append(s.validity, Validity{Item: "tcb_info", NotBefore: tcbInfo.IssueDate, NotAfter: tcbInfo.NextUpdate})
		s.validity = append(s.validity, chainValidity(tcbChain, "tcb_signing_certificate", "root_ca_certificate")...)
	}
	if qeIdentity != nil {
		s.validity = append(s.validity, Validity{Item: "qe_identity", NotBefore: qeIdentity.IssueDate, NotAfter: qeIdentity.NextUpdate})
		s.validity = append(s.validity, chainValidity(qeChain, "qe_identity_signing_certificate", "root_ca_certificate")...)
	}
	return s
}

// reparse parses a PCS body again; a document built rather than parsed has none.
func reparse[T any](body []byte, parse func([]byte) (*T, error)) (*T, error) {
	if len(body) == 0 {
		return nil, errNotParsed
	}
	return parse(body)
}

func wrapCheck(c Check, err error) error {
	if err == nil {
		return nil
	}
	return fail(c, err)
}

// reparseChain parses the DER of each certificate again, so the checked state owns its copies
// and depends on the DER only. seen shares the copies of certificates in several chains.
func reparseChain(chain []*x509.Certificate, seen map[string]*x509.Certificate) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(chain))
	for _, c := range chain {
		own := seen[string(c.Raw)]
		if own == nil {
			var err error
			if own, err = x509.ParseCertificate(c.Raw); err != nil {
				return nil, fmt.Errorf("certificate %q: %w", c.Subject.CommonName, err)
			}
			seen[string(c.Raw)] = own
		}
		out = append(out, own)
	}
	return out, nil
}

func reparseCRL(crl *x509.RevocationList) (*x509.RevocationList, map[string]time.Time, error) {
	own, err := x509.ParseRevocationList(crl.Raw)
	if err != nil {
		return nil, nil, err
	}
	if own.NextUpdate.IsZero() {
		return nil, nil, fmt.Errorf("CRL of %q has no nextUpdate", own.Issuer.CommonName)
	}
	revoked := make(map[string]time.Time, len(own.RevokedCertificateEntries))
	for _, e := range own.RevokedCertificateEntries {
		revoked[serialKey(e.SerialNumber)] = e.RevocationTime
	}
	return own, revoked, nil
}

// checkRootCRL checks that the pinned root issued and signed the root CA CRL.
func (s *colState) checkRootCRL(v *Verifier, crl *x509.RevocationList) error {
	if crl == nil {
		return nil
	}
	own, revoked, err := reparseCRL(crl)
	if err == nil {
		err = v.checkCRLSignature(own, v.root)
	}
	if err != nil {
		return fail(CheckRootCACRL, err)
	}
	s.rootCRL, s.revokedByRoot = own, revoked
	return nil
}

// checkPCKCRL checks the PCK CRL issuer chain, when present, and that its CA signed the PCK
// CRL. Without the chain, Verify checks the signature with the quote's PCK CA.
func (s *colState) checkPCKCRL(v *Verifier, crl *x509.RevocationList, chain []*x509.Certificate) error {
	if len(chain) > 0 {
		if err := v.verifyChain(chain, pckCRLChainSpec); err != nil {
			return fail(CheckPCKCRL, err)
		}
	}
	if crl == nil {
		return nil
	}
	own, revoked, err := reparseCRL(crl)
	if err == nil && len(chain) > 0 {
		err = v.checkCRLSignature(own, chain[0])
	}
	if err != nil {
		return fail(CheckPCKCRL, err)
	}
	s.pckCRL, s.revokedByPCKCRL, s.pckCRLHash = own, revoked, sha256.Sum256(own.Raw)
	if len(chain) > 0 {
		s.pckCRLIssuer = chain[0]
	}
	return nil
}

// checkRevokedByRoot checks the collateral's intermediate and signing certificates against the
// root CA CRL.
func (s *colState) checkRevokedByRoot(chains ...[]*x509.Certificate) error {
	for _, chain := range chains {
		if len(chain) > 0 {
			if err := s.notRevoked(s.revokedByRoot, chain[0], "root CA CRL"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *colState) notRevoked(revoked map[string]time.Time, c *x509.Certificate, crl string) error {
	if at, ok := revoked[serialKey(c.SerialNumber)]; ok {
		return fail(CheckRevocation, fmt.Errorf("%w: %q (serial %x) is listed by the %s, revoked at %s",
			ErrRevoked, c.Subject.CommonName, c.SerialNumber, crl, at.UTC().Format(time.RFC3339)))
	}
	return nil
}

// checkTCBInfo checks the TCB Signing chain and the signature over TCB Info's exact bytes.
func (s *colState) checkTCBInfo(v *Verifier, t *TCBInfo, chain []*x509.Certificate) error {
	switch {
	case t == nil:
		s.missing = append(s.missing, "tcb_info")
		return nil
	case len(chain) == 0:
		s.missing = append(s.missing, "tcb_info_issuer_chain")
		return nil
	}
	if err := s.checkSigned(v, &t.signedDoc, chain, "TCB Info", CheckTCBInfoIssuerChain, CheckTCBInfoSignature); err != nil {
		return err
	}
	s.tcbInfo = t
	s.evalNumber = t.TCBEvaluationDataNumber
	return nil
}

// checkQEIdentity checks the QE Identity signing chain and the signature over its exact bytes.
func (s *colState) checkQEIdentity(v *Verifier, q *QEIdentity, chain []*x509.Certificate) error {
	switch {
	case q == nil:
		s.missing = append(s.missing, "qe_identity")
		return nil
	case len(chain) == 0:
		s.missing = append(s.missing, "qe_identity_issuer_chain")
		return nil
	}
	if err := s.checkSigned(v, &q.signedDoc, chain, "QE Identity", CheckQEIdentityIssuerChain, CheckQEIdentitySignature); err != nil {
		return err
	}
	s.qeIdentity = q
	if s.tcbInfo == nil || q.TCBEvaluationDataNumber < s.evalNumber {
		s.evalNumber = q.TCBEvaluationDataNumber
	}
	return nil
}

func (s *colState) checkSigned(v *Verifier, d *signedDoc, chain []*x509.Certificate, what string, chainCheck, sigCheck Check) error {
	if err := v.verifyChain(chain, signingChainSpec); err != nil {
		return fail(chainCheck, err)
	}
	key, err := p256Key(chain[0])
	if err != nil {
		return fail(chainCheck, err)
	}
	if !verifyRS(key, d.signed, &d.sig) {
		return fail(sigCheck, fmt.Errorf("%w: %s signature %x does not verify over its %d signed bytes with the key of %q",
			ErrInvalidSignature, what, d.sig[:8], len(d.signed), chain[0].Subject.CommonName))
	}
	return nil
}

// missingErr returns ErrCollateralMissing naming the absent items, or nil.
func (s *colState) missingErr() error {
	if len(s.missing) == 0 {
		return nil
	}
	return fail(CheckCollateral, fmt.Errorf("%w: %v absent; expected TCB Info and QE Identity with their issuer chains", ErrCollateralMissing, s.missing))
}

func chainValidity(chain []*x509.Certificate, roles ...string) []Validity {
	var out []Validity
	for i, c := range chain {
		role := roles[min(i, len(roles)-1)]
		out = append(out, Validity{Item: role, Subject: c.Subject.CommonName, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()})
	}
	return out
}

func crlValidity(item string, crl *x509.RevocationList) Validity {
	return Validity{Item: item, Subject: crl.Issuer.CommonName, NotBefore: crl.ThisUpdate.UTC(), NotAfter: crl.NextUpdate.UTC()}
}

// err returns the first failed check of the collateral alone.
func (s *colState) err() error {
	return firstErr(s.crlErr, s.identityErr)
}

// missingChains lists the chains absent while the TCB Info or QE Identity they sign is present.
func (s *colState) missingChains() []string {
	var chains []string
	for _, m := range s.missing {
		if strings.HasSuffix(m, "_issuer_chain") {
			chains = append(chains, m)
		}
	}
	return chains
}

// parseQuote parses a quote, taking its PCK chain from the cache of verified chains when the
// certification data is one the Verifier has seen: a platform sends the same chain in every
// quote, and parsing it costs as much as a signature check. Certificates in the cache are never
// modified.
func (v *Verifier) parseQuote(b []byte) (*sgx.Quote, error) {
	return sgx.ParseQuoteWith(b, func(certData []byte) ([]*x509.Certificate, error) {
		if s, ok := v.pcks.get(sha256.Sum256(certData)); ok {
			return s.chain, nil
		}
		return sgx.ParsePCKChain(certData)
	})
}
