package sgx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/binary"
	"fmt"
)

// Quote format constants (Intel SGX ECDSA Quote Library Reference, quote version 3).
const (
	QuoteVersion3       = 3
	AttKeyTypeECDSAP256 = 2 // ECDSA-256-with-P-256 attestation key
	TEETypeSGX          = 0

	HeaderSize        = 48
	SignedSize        = HeaderSize + ReportBodySize // the bytes the attestation key signs
	SignatureSize     = 64                          // ECDSA P-256 r ‖ s, big-endian
	AttestationKeyLen = 64                          // P-256 point X ‖ Y, big-endian

	// CertDataTypePCKChain is certification data type 5: the PEM-encoded PCK certificate
	// chain (leaf, intermediate CA, root CA).
	CertDataTypePCKChain = 5

	// MaxQuoteSize bounds the input ParseQuote accepts. Real quotes are 4–6 KiB.
	MaxQuoteSize = 128 << 10
	// MaxPCKChainLen bounds the number of certificates in certification data.
	MaxPCKChainLen = 8
)

// IntelQEVendorID is the QE vendor ID of Intel's Quoting Enclave.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Header is the 48-byte quote header.
type Header struct {
	Version    uint16
	AttKeyType uint16
	TEEType    uint32 // reserved (zero) in version 3
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte // first 16 bytes: platform identifier chosen by the QE
}

// Quote is a parsed SGX ECDSA quote, version 3.
//
// A Quote from [ParseQuote] remembers the bytes it was parsed from; [Quote.SignedBytes] and
// [Quote.RawQEReport] return those exact bytes for signature checks.
type Quote struct {
	Header Header
	Body   ReportBody

	// Signature is the attestation key's ECDSA signature over header ‖ body (r ‖ s).
	Signature [SignatureSize]byte
	// AttestationKey is the raw P-256 public key (X ‖ Y) of the attestation key.
	AttestationKey [AttestationKeyLen]byte
	// QEReport is the Quoting Enclave's report; its report data binds the attestation key.
	QEReport ReportBody
	// QEReportSignature is the PCK key's signature over the QE report (r ‖ s).
	QEReportSignature [SignatureSize]byte
	// QEAuthData is hashed with the attestation key into the QE report data.
	QEAuthData []byte
	// CertDataType is the certification data type; only CertDataTypePCKChain is supported.
	CertDataType uint16
	// CertData is the raw certification data (for type 5, a PEM chain).
	CertData []byte

	// PCKChain is the PCK certificate chain from CertData, ordered leaf first.
	PCKChain []*x509.Certificate
	// Trailing is the number of bytes after the quote that were ignored (padding).
	Trailing int

	raw []byte // quote bytes, without trailing padding
}

// SignedBytes returns header ‖ report body: the bytes the attestation key signs.
func (q *Quote) SignedBytes() []byte {
	if q.raw != nil {
		return q.raw[:SignedSize]
	}
	b := q.appendHeader(make([]byte, 0, SignedSize))
	b, _ = q.Body.AppendBinary(b)
	return b
}

// RawQEReport returns the 384 bytes of the QE report: the bytes the PCK key signs.
func (q *Quote) RawQEReport() []byte {
	if q.raw != nil {
		off := SignedSize + 4 + SignatureSize + AttestationKeyLen
		return q.raw[off : off+ReportBodySize]
	}
	b, _ := q.QEReport.MarshalBinary()
	return b
}

// Raw returns the bytes the quote was parsed from, without trailing padding, or nil for a
// Quote that was built rather than parsed.
func (q *Quote) Raw() []byte { return q.raw }

// AttestationPublicKey returns the attestation key as an ECDSA public key. It fails if the
// point is not on the P-256 curve.
func (q *Quote) AttestationPublicKey() (*ecdsa.PublicKey, error) {
	var b [1 + AttestationKeyLen]byte
	b[0] = 4 // uncompressed point
	copy(b[1:], q.AttestationKey[:])
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b[:])
	if err != nil {
		return nil, fmt.Errorf("attestation key is not a valid P-256 point: %w", err)
	}
	return k, nil
}

// ParseQuote decodes an SGX ECDSA quote version 3 with certification data type 5.
//
// Bytes after the quote's signature data are tolerated as padding and counted in
// [Quote.Trailing]. The PCK chain may appear in any order; it is returned leaf first.
func ParseQuote(b []byte) (*Quote, error) { return ParseQuoteWith(b, ParsePCKChain) }

// ChainParser turns certification data into a PCK chain, leaf first. [ParsePCKChain] is the
// reference; a verifier may wrap it with a cache, since a platform's chain is the same in every
// quote it makes and parsing it costs as much as verifying a signature.
type ChainParser func(certData []byte) ([]*x509.Certificate, error)

// ParseQuoteWith is ParseQuote with the PCK chain parsed by parseChain.
func ParseQuoteWith(b []byte, parseChain ChainParser) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, fmt.Errorf("quote: %d bytes is larger than the %d allowed", len(b), MaxQuoteSize)
	}
	const fixed = SignedSize + 4
	if len(b) < fixed {
		return nil, fmt.Errorf("quote: expected at least %d bytes (header, report body, signature data length), found %d", fixed, len(b))
	}
	le := binary.LittleEndian
	q := &Quote{}
	h := &q.Header
	h.Version = le.Uint16(b[0:2])
	h.AttKeyType = le.Uint16(b[2:4])
	h.TEEType = le.Uint32(b[4:8])
	h.QESVN = le.Uint16(b[8:10])
	h.PCESVN = le.Uint16(b[10:12])
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
	if h.Version != QuoteVersion3 {
		return nil, fmt.Errorf("quote header: version %d not supported; expected %d", h.Version, QuoteVersion3)
	}
	if h.AttKeyType != AttKeyTypeECDSAP256 {
		return nil, fmt.Errorf("quote header: attestation key type %d not supported; expected %d (ECDSA-256-with-P-256)", h.AttKeyType, AttKeyTypeECDSAP256)
	}
	if h.TEEType != TEETypeSGX {
		return nil, fmt.Errorf("quote header: TEE type %#x not supported; expected %#x (SGX)", h.TEEType, TEETypeSGX)
	}
	q.Body, _ = ParseReportBody(b[HeaderSize:SignedSize])

	sigLen := int(le.Uint32(b[SignedSize:fixed]))
	if sigLen > len(b)-fixed {
		return nil, fmt.Errorf("quote: signature data length %d exceeds the %d bytes that follow it", sigLen, len(b)-fixed)
	}
	end := fixed + sigLen
	q.Trailing = len(b) - end
	q.raw = b[:end:end]
	if err := q.parseSignatureData(b[fixed:end], parseChain); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Quote) parseSignatureData(s []byte, parseChain ChainParser) error {
	const fixed = SignatureSize + AttestationKeyLen + ReportBodySize + SignatureSize + 2
	if len(s) < fixed {
		return fmt.Errorf("quote signature data: expected at least %d bytes, found %d", fixed, len(s))
	}
	le := binary.LittleEndian
	copy(q.Signature[:], s[0:64])
	copy(q.AttestationKey[:], s[64:128])
	q.QEReport, _ = ParseReportBody(s[128 : 128+ReportBodySize])
	copy(q.QEReportSignature[:], s[512:576])
	authLen := int(le.Uint16(s[576:578]))
	rest := s[fixed:]
	if authLen > len(rest) {
		return fmt.Errorf("quote: QE authentication data length %d exceeds the %d bytes left", authLen, len(rest))
	}
	q.QEAuthData = rest[:authLen:authLen]
	rest = rest[authLen:]
	if len(rest) < 6 {
		return fmt.Errorf("quote: expected 6 bytes of certification data type and size, found %d", len(rest))
	}
	q.CertDataType = le.Uint16(rest[0:2])
	certLen := int(le.Uint32(rest[2:6]))
	rest = rest[6:]
	if certLen != len(rest) {
		return fmt.Errorf("quote: certification data size %d does not match the %d bytes left in the signature data", certLen, len(rest))
	}
	q.CertData = rest[:certLen:certLen]
	if q.CertDataType != CertDataTypePCKChain {
		return fmt.Errorf("quote: certification data type %d not supported; expected %d (PCK certificate chain)", q.CertDataType, CertDataTypePCKChain)
	}
	chain, err := parseChain(q.CertData)
	if err != nil {
		return fmt.Errorf("quote certification data: %w", err)
	}
	q.PCKChain = chain
	return nil
}

func (q *Quote) appendHeader(b []byte) []byte {
	le := binary.LittleEndian
	h := &q.Header
	b = le.AppendUint16(b, h.Version)
	b = le.AppendUint16(b, h.AttKeyType)
	b = le.AppendUint32(b, h.TEEType)
	b = le.AppendUint16(b, h.QESVN)
	b = le.AppendUint16(b, h.PCESVN)
	b = append(b, h.QEVendorID[:]...)
	return append(b, h.UserData[:]...)
}

// MarshalBinary encodes q. It uses the struct fields, not the bytes q was parsed from, so a
// parsed quote that was not modified encodes to its original bytes without padding.
// PCKChain is ignored: CertData is written as it is.
func (q *Quote) MarshalBinary() ([]byte, error) {
	if len(q.QEAuthData) > 0xffff {
		return nil, fmt.Errorf("quote: QE authentication data of %d bytes exceeds the 65535 allowed", len(q.QEAuthData))
	}
	sigLen := SignatureSize + AttestationKeyLen + ReportBodySize + SignatureSize + 2 + len(q.QEAuthData) + 6 + len(q.CertData)
	if SignedSize+4+sigLen > MaxQuoteSize {
		return nil, fmt.Errorf("quote: encoded size %d exceeds the %d allowed", SignedSize+4+sigLen, MaxQuoteSize)
	}
	le := binary.LittleEndian
	b := make([]byte, 0, SignedSize+4+sigLen)
	b = q.appendHeader(b)
	b, _ = q.Body.AppendBinary(b)
	b = le.AppendUint32(b, uint32(sigLen))
	b = append(b, q.Signature[:]...)
	b = append(b, q.AttestationKey[:]...)
	b, _ = q.QEReport.AppendBinary(b)
	b = append(b, q.QEReportSignature[:]...)
	b = le.AppendUint16(b, uint16(len(q.QEAuthData)))
	b = append(b, q.QEAuthData...)
	b = le.AppendUint16(b, q.CertDataType)
	b = le.AppendUint32(b, uint32(len(q.CertData)))
	b = append(b, q.CertData...)
	return b, nil
}
