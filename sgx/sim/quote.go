package sim

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/cloister-dev/cloister/sgx"
)

// quoteSigOffset is where the attestation key's signature sits in a quote: after the header,
// the report body and the 4-byte signature data length.
const quoteSigOffset = sgx.SignedSize + 4

// qeAuthData is the QE authentication data of simulated quotes: the 32 bytes 0x00..0x1f that
// Intel's QE puts there too.
var qeAuthData = func() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// prepareQuotes builds the quote template: header, attestation key, QE report signed by the
// PCK key, QE authentication data and the PCK chain, with a zero body and signature.
func (p *Platform) prepareQuotes() error {
	q := sgx.Quote{
		Header: sgx.Header{
			Version:    sgx.QuoteVersion3,
			AttKeyType: sgx.AttKeyTypeECDSAP256,
			TEEType:    sgx.TEETypeSGX,
			QESVN:      p.qe.ISVSVN,
			PCESVN:     p.ext.TCB.PCESVN,
			QEVendorID: sgx.IntelQEVendorID,
		},
		QEAuthData:   qeAuthData,
		CertDataType: sgx.CertDataTypePCKChain,
		CertData:     append(pemCerts(p.certs.pck, p.certs.pckCA, p.certs.root), 0),
	}
	copy(q.Header.UserData[:], p.qeID[:])
	point, err := p.keys.attestation.PublicKey.Bytes()
	if err != nil {
		return fmt.Errorf("attestation key: %w", err)
	}
	copy(q.AttestationKey[:], point[1:]) // drop the 0x04 of the uncompressed encoding

	q.QEReport = sgx.ReportBody{
		CPUSVN:     p.ext.TCB.CPUSVN,
		MiscSelect: p.qe.MiscSelect,
		Attributes: p.qe.Attributes,
		MREnclave:  p.qe.MREnclave,
		MRSigner:   p.qe.MRSigner,
		ISVProdID:  p.qe.ISVProdID,
		ISVSVN:     p.qe.ISVSVN,
	}
	binding := sha256.Sum256(slices.Concat(q.AttestationKey[:], q.QEAuthData))
	copy(q.QEReport.ReportData[:], binding[:])
	report, err := q.QEReport.MarshalBinary()
	if err != nil {
		return fmt.Errorf("QE report: %w", err)
	}
	digest := sha256.Sum256(report)
	if err := signRS(q.QEReportSignature[:], p.keys.pck, digest[:]); err != nil {
		return fmt.Errorf("sign QE report: %w", err)
	}

	tmpl, err := q.MarshalBinary()
	if err != nil {
		return fmt.Errorf("quote template: %w", err)
	}
	if _, err := sgx.ParseQuote(tmpl); err != nil {
		return fmt.Errorf("quote template does not parse back: %w", err)
	}
	p.quoteTemplate = tmpl
	return nil
}

// Quote returns an SGX ECDSA quote v3 for body, signed by the platform's attestation key, with
// the platform's QE report, PCK certificate chain and header (QE SVN, PCE SVN, Intel's QE
// vendor ID). Callers build the body themselves, including its report data; a body with
// [sgx.AttrDebug] set gives a valid quote of a debug enclave.
//
// Quote costs one ECDSA P-256 signature and a copy of about 4 KiB. It is safe for concurrent
// use.
func (p *Platform) Quote(body sgx.ReportBody) ([]byte, error) {
	q := slices.Clone(p.quoteTemplate)
	// Encode the body in place: the slice has exactly its 384 bytes of capacity.
	enc, err := body.AppendBinary(q[sgx.HeaderSize:sgx.HeaderSize:sgx.SignedSize])
	if err != nil {
		return nil, fmt.Errorf("quote: report body: %w", err)
	}
	if len(enc) != sgx.ReportBodySize {
		return nil, fmt.Errorf("quote: report body: expected %d bytes, found %d", sgx.ReportBodySize, len(enc))
	}
	digest := sha256.Sum256(q[:sgx.SignedSize])
	if err := signRS(q[quoteSigOffset:quoteSigOffset+sgx.SignatureSize], p.keys.attestation, digest[:]); err != nil {
		return nil, fmt.Errorf("quote: sign: %w", err)
	}
	return q, nil
}
