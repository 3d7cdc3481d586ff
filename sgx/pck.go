package sgx

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDSGXExtensions is the X.509 extension of PCK certificates that carries the platform's SGX
// identity (Intel SGX PCK Certificate and CRL Profile).
var OIDSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

// Sub-OIDs below OIDSGXExtensions, as arcs appended to it.
var (
	oidPPID               = sgxOID(1)
	oidTCB                = sgxOID(2)
	oidPCESVN             = sgxOID(2, 17)
	oidCPUSVN             = sgxOID(2, 18)
	oidPCEID              = sgxOID(3)
	oidFMSPC              = sgxOID(4)
	oidSGXType            = sgxOID(5)
	oidPlatformInstanceID = sgxOID(6)
	oidConfiguration      = sgxOID(7)
	oidDynamicPlatform    = sgxOID(7, 1)
	oidCachedKeys         = sgxOID(7, 2)
	oidSMTEnabled         = sgxOID(7, 3)
)

func sgxOID(arcs ...int) asn1.ObjectIdentifier {
	return append(slices.Clone(OIDSGXExtensions), arcs...)
}

// maxPCKExtension bounds the extension value ParsePCKExtensions accepts (real ones are ~550 bytes).
const maxPCKExtension = 4 << 10

// SGXType is the platform's SGX type from the PCK certificate.
type SGXType int

// SGX types defined by Intel.
const (
	SGXTypeStandard              SGXType = 0
	SGXTypeScalable              SGXType = 1
	SGXTypeScalableWithIntegrity SGXType = 2
)

// String returns Intel's name of the SGX type.
func (t SGXType) String() string {
	switch t {
	case SGXTypeStandard:
		return "Standard"
	case SGXTypeScalable:
		return "Scalable"
	case SGXTypeScalableWithIntegrity:
		return "ScalableWithIntegrity"
	}
	return fmt.Sprintf("SGXType(%d)", int(t))
}

// PCKTCB is the TCB level a PCK certificate was issued for.
type PCKTCB struct {
	CompSVN [16]byte // SGX TCB component SVNs 1..16
	PCESVN  uint16
	CPUSVN  [16]byte
}

// PlatformConfiguration is the configuration of a multi-package (Scalable) platform. A nil
// field was absent from the certificate.
type PlatformConfiguration struct {
	DynamicPlatform *bool
	CachedKeys      *bool
	SMTEnabled      *bool
}

// PCKExtensions is the content of a PCK certificate's SGX extension.
type PCKExtensions struct {
	PPID               [16]byte
	TCB                PCKTCB
	PCEID              [2]byte
	FMSPC              [6]byte
	SGXType            SGXType
	PlatformInstanceID []byte                 // 16 bytes for Scalable platforms, else nil
	Configuration      *PlatformConfiguration // Scalable platforms only, else nil
}

// ParsePCKExtensions finds and parses the SGX extension of a PCK certificate.
func ParsePCKExtensions(cert *x509.Certificate) (*PCKExtensions, error) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSGXExtensions) {
			return ParsePCKExtensionValue(e.Value)
		}
	}
	return nil, fmt.Errorf("certificate %q has no SGX extension (OID %v)", cert.Subject.CommonName, OIDSGXExtensions)
}

// ParsePCKExtensionValue parses the DER value of the SGX extension. PPID, TCB, PCE-ID, FMSPC and
// SGX type are required; unknown entries are ignored; duplicates are an error.
func ParsePCKExtensionValue(der []byte) (*PCKExtensions, error) {
	if len(der) > maxPCKExtension {
		return nil, fmt.Errorf("SGX extension: %d bytes is larger than the %d allowed", len(der), maxPCKExtension)
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("SGX extension: expected one DER SEQUENCE")
	}
	ext := &PCKExtensions{}
	seen := map[string]bool{}
	for !seq.Empty() {
		oid, val, err := readEntry(&seq)
		if err != nil {
			return nil, fmt.Errorf("SGX extension: %w", err)
		}
		if seen[oid.String()] {
			return nil, fmt.Errorf("SGX extension: entry %v appears twice", oid)
		}
		seen[oid.String()] = true
		switch {
		case oid.Equal(oidPPID):
			err = readOctets(val, ext.PPID[:], "PPID")
		case oid.Equal(oidTCB):
			err = parseTCB(val, &ext.TCB)
		case oid.Equal(oidPCEID):
			err = readOctets(val, ext.PCEID[:], "PCE-ID")
		case oid.Equal(oidFMSPC):
			err = readOctets(val, ext.FMSPC[:], "FMSPC")
		case oid.Equal(oidSGXType):
			var t int
			if !val.ReadASN1Enum(&t) || !val.Empty() || t < 0 || t > 255 {
				err = errors.New("SGX type: expected an ENUMERATED value 0..255")
			}
			ext.SGXType = SGXType(t)
		case oid.Equal(oidPlatformInstanceID):
			ext.PlatformInstanceID = make([]byte, 16)
			err = readOctets(val, ext.PlatformInstanceID, "platform instance ID")
		case oid.Equal(oidConfiguration):
			ext.Configuration, err = parseConfiguration(val)
		}
		if err != nil {
			return nil, fmt.Errorf("SGX extension: %w", err)
		}
	}
	for _, req := range []struct {
		oid  asn1.ObjectIdentifier
		name string
	}{{oidPPID, "PPID"}, {oidTCB, "TCB"}, {oidPCEID, "PCE-ID"}, {oidFMSPC, "FMSPC"}, {oidSGXType, "SGX type"}} {
		if !seen[req.oid.String()] {
			return nil, fmt.Errorf("SGX extension: required entry %s (%v) is missing", req.name, req.oid)
		}
	}
	return ext, nil
}

// readEntry reads one SEQUENCE { OID, value } and returns the OID and the value's full TLV.
func readEntry(s *cryptobyte.String) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	var entry, val cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&entry, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("expected a SEQUENCE { OID, value } entry")
	}
	if !entry.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, errors.New("entry does not start with an OID")
	}
	var tag cbasn1.Tag
	if !entry.ReadAnyASN1Element(&val, &tag) || !entry.Empty() {
		return nil, nil, fmt.Errorf("entry %v: expected exactly one value after the OID", oid)
	}
	return oid, val, nil
}

func readOctets(val cryptobyte.String, dst []byte, name string) error {
	var b cryptobyte.String
	if !val.ReadASN1(&b, cbasn1.OCTET_STRING) || !val.Empty() {
		return fmt.Errorf("%s: expected an OCTET STRING", name)
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%s: expected %d bytes, found %d", name, len(dst), len(b))
	}
	copy(dst, b)
	return nil
}

func parseTCB(val cryptobyte.String, tcb *PCKTCB) error {
	var seq cryptobyte.String
	if !val.ReadASN1(&seq, cbasn1.SEQUENCE) || !val.Empty() {
		return errors.New("TCB: expected a SEQUENCE")
	}
	seen := map[string]bool{}
	for !seq.Empty() {
		oid, v, err := readEntry(&seq)
		if err != nil {
			return fmt.Errorf("TCB: %w", err)
		}
		if seen[oid.String()] {
			return fmt.Errorf("TCB: entry %v appears twice", oid)
		}
		seen[oid.String()] = true
		switch {
		case oid.Equal(oidPCESVN):
			var n int64
			if !v.ReadASN1Int64WithTag(&n, cbasn1.INTEGER) || !v.Empty() || n < 0 || n > 0xffff {
				return errors.New("TCB: PCESVN: expected an INTEGER 0..65535")
			}
			tcb.PCESVN = uint16(n)
		case oid.Equal(oidCPUSVN):
			if err := readOctets(v, tcb.CPUSVN[:], "TCB: CPUSVN"); err != nil {
				return err
			}
		case len(oid) == len(oidTCB)+1 && slices.Equal(oid[:len(oidTCB)], oidTCB) && oid[len(oidTCB)] >= 1 && oid[len(oidTCB)] <= 16:
			i := oid[len(oidTCB)]
			var n int64
			if !v.ReadASN1Int64WithTag(&n, cbasn1.INTEGER) || !v.Empty() || n < 0 || n > 255 {
				return fmt.Errorf("TCB: component %d SVN: expected an INTEGER 0..255", i)
			}
			tcb.CompSVN[i-1] = byte(n)
		}
	}
	for i := 1; i <= 18; i++ {
		if !seen[sgxOID(2, i).String()] {
			return fmt.Errorf("TCB: required entry %v is missing", sgxOID(2, i))
		}
	}
	return nil
}

func parseConfiguration(val cryptobyte.String) (*PlatformConfiguration, error) {
	var seq cryptobyte.String
	if !val.ReadASN1(&seq, cbasn1.SEQUENCE) || !val.Empty() {
		return nil, errors.New("configuration: expected a SEQUENCE")
	}
	c := &PlatformConfiguration{}
	for !seq.Empty() {
		oid, v, err := readEntry(&seq)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		var dst **bool
		switch {
		case oid.Equal(oidDynamicPlatform):
			dst = &c.DynamicPlatform
		case oid.Equal(oidCachedKeys):
			dst = &c.CachedKeys
		case oid.Equal(oidSMTEnabled):
			dst = &c.SMTEnabled
		default:
			continue
		}
		if *dst != nil {
			return nil, fmt.Errorf("configuration: entry %v appears twice", oid)
		}
		var b bool
		if !v.ReadASN1Boolean(&b) || !v.Empty() {
			return nil, fmt.Errorf("configuration: entry %v: expected a BOOLEAN", oid)
		}
		*dst = &b
	}
	return c, nil
}

// Marshal encodes e as the DER value of the SGX extension, in Intel's entry order.
func (e *PCKExtensions) Marshal() ([]byte, error) {
	if e.PlatformInstanceID != nil && len(e.PlatformInstanceID) != 16 {
		return nil, fmt.Errorf("SGX extension: platform instance ID must be 16 bytes, found %d", len(e.PlatformInstanceID))
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		entry(b, oidPPID, func(b *cryptobyte.Builder) { b.AddASN1OctetString(e.PPID[:]) })
		entry(b, oidTCB, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i, svn := range e.TCB.CompSVN {
					entry(b, sgxOID(2, i+1), func(b *cryptobyte.Builder) { b.AddASN1Int64(int64(svn)) })
				}
				entry(b, oidPCESVN, func(b *cryptobyte.Builder) { b.AddASN1Int64(int64(e.TCB.PCESVN)) })
				entry(b, oidCPUSVN, func(b *cryptobyte.Builder) { b.AddASN1OctetString(e.TCB.CPUSVN[:]) })
			})
		})
		entry(b, oidPCEID, func(b *cryptobyte.Builder) { b.AddASN1OctetString(e.PCEID[:]) })
		entry(b, oidFMSPC, func(b *cryptobyte.Builder) { b.AddASN1OctetString(e.FMSPC[:]) })
		entry(b, oidSGXType, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(e.SGXType)) })
		if e.PlatformInstanceID != nil {
			entry(b, oidPlatformInstanceID, func(b *cryptobyte.Builder) { b.AddASN1OctetString(e.PlatformInstanceID) })
		}
		if c := e.Configuration; c != nil {
			entry(b, oidConfiguration, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, f := range []struct {
						oid asn1.ObjectIdentifier
						v   *bool
					}{{oidDynamicPlatform, c.DynamicPlatform}, {oidCachedKeys, c.CachedKeys}, {oidSMTEnabled, c.SMTEnabled}} {
						if f.v != nil {
							entry(b, f.oid, func(b *cryptobyte.Builder) { b.AddASN1Boolean(*f.v) })
						}
					}
				})
			})
		}
	})
	return b.Bytes()
}

func entry(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		value(b)
	})
}

// PCKCAType says which Intel PCK intermediate CA issued a PCK certificate. It selects the PCK
// CRL ("processor" or "platform").
type PCKCAType string

// The two PCK CA types.
const (
	PCKCAProcessor PCKCAType = "processor"
	PCKCAPlatform  PCKCAType = "platform"
)

// PCKCATypeOf returns the CA type named by an issuer common name such as
// "Intel SGX PCK Platform CA".
func PCKCATypeOf(issuerCN string) (PCKCAType, error) {
	switch {
	case strings.HasSuffix(issuerCN, "PCK Processor CA"):
		return PCKCAProcessor, nil
	case strings.HasSuffix(issuerCN, "PCK Platform CA"):
		return PCKCAPlatform, nil
	}
	return "", fmt.Errorf("PCK issuer %q is neither a PCK Processor CA nor a PCK Platform CA", issuerCN)
}
