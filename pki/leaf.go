package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/url"
	"time"
)

// LeafConfig configures [CA.IssueLeaf].
type LeafConfig struct {
	// CommonName is the subject common name (at most 64 bytes; may be empty).
	CommonName string
	// DNSNames, IPAddresses and URIs are the subject alternative names;
	// workload certificates carry their SPIFFE ID in URIs. DNS names and
	// URIs must be ASCII; IP addresses must be 4 or 16 bytes.
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []*url.URL
	// Validity is how long the certificate is valid from NotBefore; zero
	// means DefaultLeafValidity. NotAfter never exceeds the issuer's.
	Validity time.Duration
	// NotBefore is the start of validity; zero means time.Now(). The
	// certificate's NotBefore is this minus Backdate.
	NotBefore time.Time
	// IsCA makes the certificate a CA with path length 0 (for secrets that
	// are CA certificates). Under an intermediate it may not validly sign
	// further CAs.
	IsCA bool
}

// IssueLeaf signs a certificate for pub (ECDSA P-256/P-384, RSA of 2048 to
// 8192 bits, or Ed25519) with extended key usages server and client
// authentication and key usage digital signature (plus key encipherment for
// RSA keys, and certificate signing if IsCA). The subject organization and
// simulation marking come from ca. The issuer's key must be ECDSA P-256, as
// NewRoot and NewIntermediate make it.
//
// This is on the hot path of every workload activation, so it encodes the
// certificate directly (byte-for-byte what crypto/x509.CreateCertificate
// makes from the same template; the tests check this) and costs about one
// ECDSA P-256 signature. Unlike CreateCertificate it does not verify its own
// signature afterwards, which would double the cost; the signer is an
// in-memory stdlib key.
func (ca *CA) IssueLeaf(pub crypto.PublicKey, cfg LeafConfig) (*x509.Certificate, error) {
	der, err := ca.IssueLeafDER(pub, cfg)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing the certificate just signed: %w", err)
	}
	return cert, nil
}

// IssueLeafDER is IssueLeaf without parsing the result: it returns the DER certificate. Callers
// that only pass the certificate on (as PEM) save the parse, about a third of the cost.
func (ca *CA) IssueLeafDER(pub crypto.PublicKey, cfg LeafConfig) ([]byte, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("pki: leaf key: %w", err)
	}
	if err := checkCAKey(ca); err != nil {
		return nil, err
	}
	if len(cfg.CommonName) > maxCommonNameLength {
		return nil, fmt.Errorf("pki: common name is %d bytes, at most %d allowed", len(cfg.CommonName), maxCommonNameLength)
	}
	notBefore, notAfter, err := validityWindow(ca.Cert, cfg.NotBefore, cfg.Validity, DefaultLeafValidity)
	if err != nil {
		return nil, err
	}
	tbs, err := leafTBS(ca.Cert, pub, cfg, newSerial().Bytes(), notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(tbs)
	sig, err := ca.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("pki: signing certificate %q: %w", cfg.CommonName, err)
	}

	b := make(derBuilder, 0, len(tbs)+len(sig)+32)
	c := b.open(tagSequence)
	b = append(b, tbs...)
	b = append(b, derECDSAWithSHA256...)
	s := b.open(tagBitString)
	b = append(b, 0) // no unused bits
	b = append(b, sig...)
	b.close(s)
	b.close(c)
	return b, nil
}

// checkCAKey checks that ca's key is ECDSA P-256 and matches its certificate.
func checkCAKey(ca *CA) error {
	pub, ok := ca.Key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("pki: CA key is %T, expected ECDSA P-256", ca.Key.Public())
	}
	if !pub.Equal(ca.Cert.PublicKey) {
		return fmt.Errorf("pki: CA key does not match the public key of %q", ca.Cert.Subject.CommonName)
	}
	return nil
}

// DER tags and fixed encodings used by leafTBS.
const (
	tagBoolean      = 0x01
	tagInteger      = 0x02
	tagBitString    = 0x03
	tagOctetString  = 0x04
	tagUTCTime      = 0x17
	tagGeneralized  = 0x18
	tagSequence     = 0x30
	tagExtensions   = 0xa3 // [3] EXPLICIT, constructed
	tagAKIDKeyID    = 0x80 // [0] IMPLICIT OCTET STRING
	tagSANDNSName   = 0x82 // [2] IMPLICIT IA5String
	tagSANURI       = 0x86 // [6] IMPLICIT IA5String
	tagSANIPAddress = 0x87 // [7] IMPLICIT OCTET STRING
)

var (
	derVersion3         = []byte{0xa0, 0x03, 0x02, 0x01, 0x02}
	derECDSAWithSHA256  = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
	derCritical         = []byte{tagBoolean, 0x01, 0xff}
	derEmptySubject     = []byte{0x30, 0x00}
	oidKeyUsage         = []byte{0x06, 0x03, 0x55, 0x1d, 0x0f}
	oidExtKeyUsage      = []byte{0x06, 0x03, 0x55, 0x1d, 0x25}
	oidBasicConstraints = []byte{0x06, 0x03, 0x55, 0x1d, 0x13}
	oidSubjectKeyID     = []byte{0x06, 0x03, 0x55, 0x1d, 0x0e}
	oidAuthorityKeyID   = []byte{0x06, 0x03, 0x55, 0x1d, 0x23}
	oidSubjectAltName   = []byte{0x06, 0x03, 0x55, 0x1d, 0x11}
	// SEQUENCE { id-kp-serverAuth, id-kp-clientAuth }
	derServerClientAuth = []byte{0x30, 0x14,
		0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
		0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02}
	// BasicConstraints: SEQUENCE {} for a leaf; {TRUE, 0} for a CA.
	derNotCA      = []byte{0x30, 0x00}
	derCAPathLen0 = []byte{0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00}
)

// leafTBS encodes the TBSCertificate of a leaf in the field and extension
// order crypto/x509.CreateCertificate uses.
func leafTBS(issuer *x509.Certificate, pub crypto.PublicKey, cfg LeafConfig, serial []byte, notBefore, notAfter time.Time) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding leaf public key: %w", err)
	}
	subject, err := asn1.Marshal(subject(cfg.CommonName, issuer.Subject.Organization, IsSimulation(issuer)).ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("pki: encoding subject: %w", err)
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	basic := derNotCA
	var skid []byte
	if cfg.IsCA {
		usage |= x509.KeyUsageCertSign
		basic = derCAPathLen0
		if skid, err = subjectKeyID(spki); err != nil {
			return nil, err
		}
	}

	b := make(derBuilder, 0, 512+len(spki)+len(subject)+len(issuer.RawSubject))
	tbs := b.open(tagSequence)
	b = append(b, derVersion3...)
	b.add(tagInteger, derInteger(serial))
	b = append(b, derECDSAWithSHA256...)
	b = append(b, issuer.RawSubject...)
	v := b.open(tagSequence)
	if err := b.time(notBefore); err != nil {
		return nil, err
	}
	if err := b.time(notAfter); err != nil {
		return nil, err
	}
	b.close(v)
	b = append(b, subject...)
	b = append(b, spki...)

	e := b.open(tagExtensions)
	exts := b.open(tagSequence)
	b.extension(oidKeyUsage, true, keyUsageBitString(usage))
	b.extension(oidExtKeyUsage, false, derServerClientAuth)
	b.extension(oidBasicConstraints, true, basic)
	if skid != nil {
		ext := b.openExtension(oidSubjectKeyID, false)
		b.add(tagOctetString, skid)
		b.closeExtension(ext)
	}
	if len(issuer.SubjectKeyId) > 0 {
		ext := b.openExtension(oidAuthorityKeyID, false)
		seq := b.open(tagSequence)
		b.add(tagAKIDKeyID, issuer.SubjectKeyId)
		b.close(seq)
		b.closeExtension(ext)
	}
	if len(cfg.DNSNames)+len(cfg.IPAddresses)+len(cfg.URIs) > 0 {
		// RFC 5280 4.2.1.6: critical if the subject is empty.
		ext := b.openExtension(oidSubjectAltName, bytes.Equal(subject, derEmptySubject))
		if err := b.subjectAltNames(cfg); err != nil {
			return nil, err
		}
		b.closeExtension(ext)
	}
	b.close(exts)
	b.close(e)
	b.close(tbs)
	return b, nil
}

// subjectKeyID is RFC 7093 method 1, as crypto/x509 computes it: the first
// 160 bits of SHA-256 over the subjectPublicKey BIT STRING contents.
func subjectKeyID(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("pki: reading leaf public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// keyUsageBitString encodes a KeyUsage as a DER BIT STRING (bit 0 first,
// trailing zero bits dropped).
func keyUsageBitString(ku x509.KeyUsage) []byte {
	a := [2]byte{bits.Reverse8(byte(ku)), bits.Reverse8(byte(ku >> 8))}
	n := 1
	if a[1] != 0 {
		n = 2
	}
	unused := bits.TrailingZeros8(a[n-1])
	if a[n-1] == 0 {
		unused = 0
	}
	return append([]byte{tagBitString, byte(1 + n), byte(unused)}, a[:n]...)
}

// derInteger returns the contents of a DER INTEGER for the non-negative
// big-endian magnitude m.
func derInteger(m []byte) []byte {
	if len(m) == 0 {
		return []byte{0}
	}
	if m[0]&0x80 != 0 {
		return append([]byte{0}, m...)
	}
	return m
}

// derBuilder appends DER. open writes a tag and a placeholder length; close
// sets the length once the contents are written.
type derBuilder []byte

func (b *derBuilder) open(tag byte) int {
	*b = append(*b, tag, 0)
	return len(*b)
}

func (b *derBuilder) close(start int) {
	n := len(*b) - start
	if n < 0x80 {
		(*b)[start-1] = byte(n)
		return
	}
	var l [8]byte
	k := 0
	for v := n; v > 0; v >>= 8 {
		k++
	}
	for i, v := k-1, n; i >= 0; i, v = i-1, v>>8 {
		l[i] = byte(v)
	}
	(*b)[start-1] = 0x80 | byte(k)
	*b = append(*b, l[:k]...)
	copy((*b)[start+k:], (*b)[start:start+n])
	copy((*b)[start:], l[:k])
}

func (b *derBuilder) add(tag byte, contents []byte) {
	s := b.open(tag)
	*b = append(*b, contents...)
	b.close(s)
}

// extension writes an Extension whose extnValue is the DER value.
func (b *derBuilder) extension(oid []byte, critical bool, value []byte) {
	ext := b.openExtension(oid, critical)
	*b = append(*b, value...)
	b.closeExtension(ext)
}

// openExtension starts an Extension; the caller writes extnValue's contents.
func (b *derBuilder) openExtension(oid []byte, critical bool) [2]int {
	seq := b.open(tagSequence)
	*b = append(*b, oid...)
	if critical {
		*b = append(*b, derCritical...)
	}
	return [2]int{seq, b.open(tagOctetString)}
}

func (b *derBuilder) closeExtension(ext [2]int) {
	b.close(ext[1])
	b.close(ext[0])
}

// time writes t as UTCTime in 1950-2049 and as GeneralizedTime otherwise,
// at whole seconds, as encoding/asn1 does.
func (b *derBuilder) time(t time.Time) error {
	t = t.UTC()
	switch y := t.Year(); {
	case y >= 1950 && y < 2050:
		b.add(tagUTCTime, t.AppendFormat(nil, "060102150405Z"))
	case y >= 0 && y <= 9999:
		b.add(tagGeneralized, t.AppendFormat(nil, "20060102150405Z"))
	default:
		return fmt.Errorf("pki: time %s cannot be encoded in a certificate", t)
	}
	return nil
}

// subjectAltNames writes the GeneralNames of cfg: DNS names, IP addresses,
// then URIs.
func (b *derBuilder) subjectAltNames(cfg LeafConfig) error {
	seq := b.open(tagSequence)
	for _, name := range cfg.DNSNames {
		if err := checkIA5(name); err != nil {
			return fmt.Errorf("pki: DNS name %w", err)
		}
		b.add(tagSANDNSName, []byte(name))
	}
	for _, ip := range cfg.IPAddresses {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return fmt.Errorf("pki: IP address of %d bytes, expected 4 or 16", len(ip))
		}
		b.add(tagSANIPAddress, ip)
	}
	for _, u := range cfg.URIs {
		if u == nil {
			return errors.New("pki: nil URI in subject alternative names")
		}
		s := u.String()
		if err := checkIA5(s); err != nil {
			return fmt.Errorf("pki: URI %w", err)
		}
		b.add(tagSANURI, []byte(s))
	}
	b.close(seq)
	return nil
}

func checkIA5(s string) error {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return fmt.Errorf("%q has a non-ASCII byte at %d; an IA5String holds ASCII only", s, i)
		}
	}
	return nil
}
