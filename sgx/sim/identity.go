package sim

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// The JSON types below spell TCB Info v3 and QE Identity v2 with Intel's member order, so that
// json.Marshal gives the compact bytes Intel's PCS serves (and signs).

type tcbInfo struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               string     `json:"issueDate"`
	NextUpdate              string     `json:"nextUpdate"`
	FMSPC                   string     `json:"fmspc"`
	PCEID                   string     `json:"pceId"`
	TCBType                 int        `json:"tcbType"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	TCBLevels               []tcbLevel `json:"tcbLevels"`
}

type tcbLevel struct {
	TCB         tcbComponents `json:"tcb"`
	TCBDate     string        `json:"tcbDate"`
	TCBStatus   string        `json:"tcbStatus"`
	AdvisoryIDs []string      `json:"advisoryIDs,omitempty"`
}

type tcbComponents struct {
	SGXTCBComponents [16]componentSVN `json:"sgxtcbcomponents"`
	PCESVN           uint16           `json:"pcesvn"`
}

type componentSVN struct {
	SVN uint8 `json:"svn"`
}

type qeIdentity struct {
	ID                      string       `json:"id"`
	Version                 int          `json:"version"`
	IssueDate               string       `json:"issueDate"`
	NextUpdate              string       `json:"nextUpdate"`
	TCBEvaluationDataNumber int          `json:"tcbEvaluationDataNumber"`
	MiscSelect              string       `json:"miscselect"`
	MiscSelectMask          string       `json:"miscselectMask"`
	Attributes              string       `json:"attributes"`
	AttributesMask          string       `json:"attributesMask"`
	MRSigner                string       `json:"mrsigner"`
	ISVProdID               uint16       `json:"isvprodid"`
	TCBLevels               []qeTCBLevel `json:"tcbLevels"`
}

type qeTCBLevel struct {
	TCB struct {
		ISVSVN uint16 `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     string   `json:"tcbDate"`
	TCBStatus   string   `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
}

// Masks of the QE Identity, as Intel publishes them: every MISCSELECT bit, every attribute
// flag except MODE64BIT, no XFRM bit.
const (
	qeMiscSelectMask = 0xffffffff
	qeFlagsMask      = ^uint64(sgx.AttrMode64Bit)
	qeXFRMMask       = 0
)

// olderAdvisories are listed on the OutOfDate levels below the platform's and the QE's level,
// growing with age as on Intel's. They never match the simulated platform.
var olderAdvisories = []string{"INTEL-SA-00615", "INTEL-SA-00657", "INTEL-SA-00767"}

// marshalTCBInfo returns the signed PCS response {"tcbInfo":{...},"signature":"..."} for a
// platform with the given PCK TCB.
func marshalTCBInfo(fmspc [6]byte, pceID [2]byte, tcb sgx.PCKTCB, c *CollateralOptions, signer *ecdsa.PrivateKey) ([]byte, error) {
	levels, err := tcbLevels(tcb, c)
	if err != nil {
		return nil, err
	}
	return signedResponse("tcbInfo", tcbInfo{
		ID:                      "SGX",
		Version:                 3,
		IssueDate:               jsonTime(c.IssueDate),
		NextUpdate:              jsonTime(c.NextUpdate),
		FMSPC:                   upperHex(fmspc[:]),
		PCEID:                   upperHex(pceID[:]),
		TCBType:                 0,
		TCBEvaluationDataNumber: c.TCBEvaluationDataNumber,
		TCBLevels:               levels,
	}, signer)
}

// tcbLevels lists TCB levels from the highest down: an UpToDate level above the platform's
// when its status is not UpToDate, the platform's level (exactly its PCK SVNs), then OutOfDate
// levels with lower SVNs.
func tcbLevels(tcb sgx.PCKTCB, c *CollateralOptions) ([]tcbLevel, error) {
	var levels []tcbLevel
	add := func(t sgx.PCKTCB, status verify.TCBStatus, advisories []string) {
		l := tcbLevel{
			TCBDate:     levelDate(c.IssueDate, len(levels)),
			TCBStatus:   string(status),
			AdvisoryIDs: advisories,
		}
		for i, svn := range t.CompSVN {
			l.TCB.SGXTCBComponents[i].SVN = svn
		}
		l.TCB.PCESVN = t.PCESVN
		levels = append(levels, l)
	}
	if c.TCBStatus != verify.UpToDate {
		higher, ok := raise(tcb)
		if !ok {
			return nil, fmt.Errorf("TCB status %s needs an UpToDate level above the platform's, but every SVN of its TCB is at its maximum", c.TCBStatus)
		}
		add(higher, verify.UpToDate, nil)
	}
	add(tcb, c.TCBStatus, c.AdvisoryIDs)
	// Below it, OutOfDate levels: components 1 and 2 one lower, then PCESVN one lower too.
	older := tcb
	older.CompSVN[0], older.CompSVN[1] = decrement(older.CompSVN[0]), decrement(older.CompSVN[1])
	if older != tcb {
		add(older, verify.OutOfDate, advisoriesUnion(c.AdvisoryIDs, olderAdvisories[:1]))
	}
	if older.PCESVN > 0 {
		older.PCESVN--
		add(older, verify.OutOfDate, advisoriesUnion(c.AdvisoryIDs, olderAdvisories[:2]))
	}
	return levels, nil
}

// raise returns a TCB one step above t: components 1 and 2 plus one where below 255, otherwise
// PCESVN plus one. It reports false when neither is possible.
func raise(t sgx.PCKTCB) (sgx.PCKTCB, bool) {
	h := t
	for _, comp := range []int{0, 1} {
		if h.CompSVN[comp] < 255 {
			h.CompSVN[comp]++
		}
	}
	if h != t {
		return h, true
	}
	if t.PCESVN == 0xffff {
		return t, false
	}
	h.PCESVN++
	return h, true
}

func decrement(svn uint8) uint8 { return svn - min(svn, 1) }

// marshalQEIdentity returns the signed PCS response {"enclaveIdentity":{...},"signature":"..."}
// for the platform's Quoting Enclave.
func marshalQEIdentity(qe QEIdentity, c *CollateralOptions, signer *ecdsa.PrivateKey) ([]byte, error) {
	levels, err := qeTCBLevels(qe.ISVSVN, c)
	if err != nil {
		return nil, err
	}
	attrs := attributeBytes(qe.Attributes.Flags&qeFlagsMask, qe.Attributes.XFRM&qeXFRMMask)
	mask := attributeBytes(qeFlagsMask, qeXFRMMask)
	var misc, miscMask [4]byte
	binary.LittleEndian.PutUint32(misc[:], qe.MiscSelect&qeMiscSelectMask)
	binary.LittleEndian.PutUint32(miscMask[:], qeMiscSelectMask)
	return signedResponse("enclaveIdentity", qeIdentity{
		ID:                      "QE",
		Version:                 2,
		IssueDate:               jsonTime(c.IssueDate),
		NextUpdate:              jsonTime(c.NextUpdate),
		TCBEvaluationDataNumber: c.TCBEvaluationDataNumber,
		MiscSelect:              upperHex(misc[:]),
		MiscSelectMask:          upperHex(miscMask[:]),
		Attributes:              upperHex(attrs[:]),
		AttributesMask:          upperHex(mask[:]),
		MRSigner:                upperHex(qe.MRSigner[:]),
		ISVProdID:               qe.ISVProdID,
		TCBLevels:               levels,
	}, signer)
}

// qeTCBLevels lists QE TCB levels from the highest ISVSVN down: an UpToDate level at svn+1 when
// the QE's status is not UpToDate, the QE's level, then OutOfDate levels at svn-2, svn-3 and
// svn-4 where those exist.
func qeTCBLevels(svn uint16, c *CollateralOptions) ([]qeTCBLevel, error) {
	var levels []qeTCBLevel
	add := func(isvsvn uint16, status verify.TCBStatus, advisories []string) {
		l := qeTCBLevel{TCBDate: levelDate(c.IssueDate, len(levels)), TCBStatus: string(status), AdvisoryIDs: advisories}
		l.TCB.ISVSVN = isvsvn
		levels = append(levels, l)
	}
	if c.QETCBStatus != verify.UpToDate {
		if svn == 0xffff {
			return nil, fmt.Errorf("QE TCB status %s needs an UpToDate level above QE ISVSVN %d, which is the maximum", c.QETCBStatus, svn)
		}
		add(svn+1, verify.UpToDate, nil)
	}
	add(svn, c.QETCBStatus, c.QEAdvisoryIDs)
	for i, d := range []uint16{2, 3, 4} {
		if svn >= d {
			add(svn-d, verify.OutOfDate, advisoriesUnion(c.QEAdvisoryIDs, olderAdvisories[:i+1]))
		}
	}
	return levels, nil
}

// signedResponse marshals v compactly and wraps it as {"<key>":<v>,"signature":"<hex r‖s>"},
// signing the exact bytes of v with ECDSA P-256 and SHA-256.
func signedResponse(key string, v any, signer *ecdsa.PrivateKey) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	digest := sha256.Sum256(body)
	var sig [sgx.SignatureSize]byte
	if err := signRS(sig[:], signer, digest[:]); err != nil {
		return nil, fmt.Errorf("sign %s: %w", key, err)
	}
	out := make([]byte, 0, len(key)+len(body)+2*len(sig)+20)
	out = fmt.Appendf(out, `{"%s":`, key)
	out = append(out, body...)
	out = append(out, `,"signature":"`...)
	out = hex.AppendEncode(out, sig[:])
	out = append(out, `"}`...)
	return out, nil
}

// attributeBytes encodes SGX attributes as they appear in a report: flags then XFRM, both
// little-endian.
func attributeBytes(flags, xfrm uint64) [16]byte {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], flags)
	binary.LittleEndian.PutUint64(b[8:], xfrm)
	return b
}

// levelDate is the tcbDate of the i-th level from the top: the first day of the month before
// issue, then six months earlier per level.
func levelDate(issue time.Time, i int) string {
	first := time.Date(issue.Year(), issue.Month(), 1, 0, 0, 0, 0, time.UTC)
	return jsonTime(first.AddDate(0, -1-6*i, 0))
}

func advisoriesUnion(a, b []string) []string {
	u := slices.Concat(a, b)
	slices.Sort(u)
	return slices.Compact(u)
}

// jsonTime formats t as Intel does: RFC 3339, whole seconds, UTC.
func jsonTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }
