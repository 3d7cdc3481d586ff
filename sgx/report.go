package sgx

import (
	"encoding/binary"
	"fmt"
)

// ReportBodySize is the size in bytes of an SGX enclave report body (sgx_report_body_t).
const ReportBodySize = 384

// Attribute flag bits of [Attributes.Flags].
const (
	AttrInit         = 1 << 0 // enclave initialized
	AttrDebug        = 1 << 1 // debug enclave: its memory can be read by the host
	AttrMode64Bit    = 1 << 2 // 64-bit enclave
	AttrProvisionKey = 1 << 4 // may request the provisioning key
	AttrEInitToken   = 1 << 5 // may request the EINIT token key
	AttrKSS          = 1 << 7 // key separation and sharing enabled
)

// Attributes are an enclave's SGX attributes: flags and the XSAVE feature request mask.
type Attributes struct {
	Flags uint64
	XFRM  uint64
}

// ReportBody is the enclave identity part of an SGX report, as laid out by the hardware.
// Reserved fields are kept so that parsing and marshalling round-trip byte for byte.
type ReportBody struct {
	CPUSVN       [16]byte
	MiscSelect   uint32
	Reserved1    [12]byte
	ISVExtProdID [16]byte
	Attributes   Attributes
	MREnclave    [32]byte
	Reserved2    [32]byte
	MRSigner     [32]byte
	Reserved3    [32]byte
	ConfigID     [64]byte
	ISVProdID    uint16
	ISVSVN       uint16
	ConfigSVN    uint16
	Reserved4    [42]byte
	ISVFamilyID  [16]byte
	ReportData   [64]byte
}

// Debug reports whether the DEBUG attribute is set. A debug enclave's memory is readable by the
// host, so it proves nothing about confidentiality.
func (r *ReportBody) Debug() bool { return r.Attributes.Flags&AttrDebug != 0 }

// ParseReportBody decodes a 384-byte report body.
func ParseReportBody(b []byte) (ReportBody, error) {
	var r ReportBody
	if len(b) != ReportBodySize {
		return r, fmt.Errorf("report body: expected %d bytes, found %d", ReportBodySize, len(b))
	}
	le := binary.LittleEndian
	copy(r.CPUSVN[:], b[0:16])
	r.MiscSelect = le.Uint32(b[16:20])
	copy(r.Reserved1[:], b[20:32])
	copy(r.ISVExtProdID[:], b[32:48])
	r.Attributes.Flags = le.Uint64(b[48:56])
	r.Attributes.XFRM = le.Uint64(b[56:64])
	copy(r.MREnclave[:], b[64:96])
	copy(r.Reserved2[:], b[96:128])
	copy(r.MRSigner[:], b[128:160])
	copy(r.Reserved3[:], b[160:192])
	copy(r.ConfigID[:], b[192:256])
	r.ISVProdID = le.Uint16(b[256:258])
	r.ISVSVN = le.Uint16(b[258:260])
	r.ConfigSVN = le.Uint16(b[260:262])
	copy(r.Reserved4[:], b[262:304])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
	return r, nil
}

// AppendBinary appends the 384-byte encoding of r to b.
func (r *ReportBody) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = append(b, r.CPUSVN[:]...)
	b = le.AppendUint32(b, r.MiscSelect)
	b = append(b, r.Reserved1[:]...)
	b = append(b, r.ISVExtProdID[:]...)
	b = le.AppendUint64(b, r.Attributes.Flags)
	b = le.AppendUint64(b, r.Attributes.XFRM)
	b = append(b, r.MREnclave[:]...)
	b = append(b, r.Reserved2[:]...)
	b = append(b, r.MRSigner[:]...)
	b = append(b, r.Reserved3[:]...)
	b = append(b, r.ConfigID[:]...)
	b = le.AppendUint16(b, r.ISVProdID)
	b = le.AppendUint16(b, r.ISVSVN)
	b = le.AppendUint16(b, r.ConfigSVN)
	b = append(b, r.Reserved4[:]...)
	b = append(b, r.ISVFamilyID[:]...)
	b = append(b, r.ReportData[:]...)
	return b, nil
}

// MarshalBinary returns the 384-byte encoding of r.
func (r *ReportBody) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, ReportBodySize))
}
