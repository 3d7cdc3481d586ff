package verify

import (
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// QEIdentity is Intel's identity of the Quoting Enclave (QE Identity version 2, "id":"QE"):
// what its report must contain and the status of each of its ISVSVNs.
//
// MiscSelect, Attributes and their masks are in the byte order of the report body (as Intel's
// QVL compares them). A QEIdentity from [ParseQEIdentity] keeps the response body and the exact
// signed bytes; the Verifier evaluates the values it parses from those bytes itself.
type QEIdentity struct {
	ID                      string    // "QE"
	Version                 int       // 2
	IssueDate               time.Time // start of validity
	NextUpdate              time.Time // end of validity
	TCBEvaluationDataNumber int       // Intel's TCB recovery counter
	MiscSelect              [4]byte   // expected MISCSELECT under MiscSelectMask
	MiscSelectMask          [4]byte   // bits of MISCSELECT compared
	Attributes              [16]byte  // expected flags ‖ XFRM (little-endian, as in the report) under AttributesMask
	AttributesMask          [16]byte  // bits of ATTRIBUTES compared
	MRSigner                [32]byte  // the QE's MRSIGNER
	ISVProdID               uint16    // the QE's ISVPRODID
	// Levels are the QE TCB levels in the order of the document.
	Levels []QETCBLevel

	signedDoc
}

// QETCBLevel is one TCB level of QE Identity.
type QETCBLevel struct {
	ISVSVN      uint16    // lowest QE ISVSVN of the level
	TCBDate     time.Time // date of the TCB recovery the level belongs to
	Status      TCBStatus // status of QEs at this level
	AdvisoryIDs []string  // Intel security advisories that apply; nil when none are listed
}

// ParseQEIdentity parses a PCS QE Identity response body {"enclaveIdentity":{...},
// "signature":"<hex>"} of at most [MaxCollateralItemSize] bytes. It does not verify the
// signature. Only version 2 with id "QE" is accepted (not QVE or TD_QE). Missing required
// fields, wrong types and values out of range are errors naming the field; unknown fields are
// ignored.
func ParseQEIdentity(body []byte) (*QEIdentity, error) {
	q, err := parseQEIdentity(body)
	if err != nil {
		return nil, fmt.Errorf("QE Identity: %w", err)
	}
	return q, nil
}

// wireQEIdentity is the JSON shape of QE Identity version 2.
type wireQEIdentity struct {
	ID                      *string `json:"id"`
	Version                 *int64  `json:"version"`
	IssueDate               *string `json:"issueDate"`
	NextUpdate              *string `json:"nextUpdate"`
	TCBEvaluationDataNumber *int64  `json:"tcbEvaluationDataNumber"`
	MiscSelect              *string `json:"miscselect"`
	MiscSelectMask          *string `json:"miscselectMask"`
	Attributes              *string `json:"attributes"`
	AttributesMask          *string `json:"attributesMask"`
	MRSigner                *string `json:"mrsigner"`
	ISVProdID               *int64  `json:"isvprodid"`
	TCBLevels               *[]struct {
		TCB *struct {
			ISVSVN *int64 `json:"isvsvn"`
		} `json:"tcb"`
		TCBDate     *string   `json:"tcbDate"`
		TCBStatus   *string   `json:"tcbStatus"`
		AdvisoryIDs *[]string `json:"advisoryIDs"`
	} `json:"tcbLevels"`
}

func parseQEIdentity(body []byte) (*QEIdentity, error) {
	var w wireQEIdentity
	doc, err := parseSigned(body, "enclaveIdentity", &w)
	if err != nil {
		return nil, err
	}
	q := &QEIdentity{signedDoc: doc}
	if q.ID, err = required("enclaveIdentity.id", w.ID); err != nil {
		return nil, err
	}
	if q.ID != "QE" {
		return nil, fmt.Errorf(`enclaveIdentity.id: expected "QE" (the SGX Quoting Enclave), found %q`, q.ID)
	}
	var version, evalNum, prodID int64
	var misc, miscMask, attrs, attrsMask, mrsigner []byte
	err = firstErr(
		into(&version)(intField("enclaveIdentity.version", w.Version, 2, 2)),
		into(&q.IssueDate)(timeField("enclaveIdentity.issueDate", w.IssueDate)),
		into(&q.NextUpdate)(timeField("enclaveIdentity.nextUpdate", w.NextUpdate)),
		into(&evalNum)(intField("enclaveIdentity.tcbEvaluationDataNumber", w.TCBEvaluationDataNumber, 0, 1<<31-1)),
		into(&misc)(hexField("enclaveIdentity.miscselect", w.MiscSelect, 4)),
		into(&miscMask)(hexField("enclaveIdentity.miscselectMask", w.MiscSelectMask, 4)),
		into(&attrs)(hexField("enclaveIdentity.attributes", w.Attributes, 16)),
		into(&attrsMask)(hexField("enclaveIdentity.attributesMask", w.AttributesMask, 16)),
		into(&mrsigner)(hexField("enclaveIdentity.mrsigner", w.MRSigner, 32)),
		into(&prodID)(intField("enclaveIdentity.isvprodid", w.ISVProdID, 0, 0xffff)),
	)
	if err != nil {
		return nil, err
	}
	if err := window("enclaveIdentity", q.IssueDate, q.NextUpdate); err != nil {
		return nil, err
	}
	q.Version, q.TCBEvaluationDataNumber, q.ISVProdID = int(version), int(evalNum), uint16(prodID)
	copy(q.MiscSelect[:], misc)
	copy(q.MiscSelectMask[:], miscMask)
	copy(q.Attributes[:], attrs)
	copy(q.AttributesMask[:], attrsMask)
	copy(q.MRSigner[:], mrsigner)
	levels, err := required("enclaveIdentity.tcbLevels", w.TCBLevels)
	if err != nil {
		return nil, err
	}
	if len(levels) == 0 || len(levels) > maxLevels {
		return nil, fmt.Errorf("enclaveIdentity.tcbLevels: expected 1..%d levels, found %d", maxLevels, len(levels))
	}
	q.Levels = make([]QETCBLevel, len(levels))
	for i, wl := range levels {
		path := fmt.Sprintf("enclaveIdentity.tcbLevels[%d]", i)
		l := &q.Levels[i]
		tcb, err := required(path+".tcb", wl.TCB)
		if err != nil {
			return nil, err
		}
		var svn int64
		err = firstErr(
			into(&svn)(intField(path+".tcb.isvsvn", tcb.ISVSVN, 0, 0xffff)),
			into(&l.TCBDate)(timeField(path+".tcbDate", wl.TCBDate)),
			into(&l.Status)(statusField(path+".tcbStatus", wl.TCBStatus)),
		)
		if err != nil {
			return nil, err
		}
		l.ISVSVN = uint16(svn)
		if wl.AdvisoryIDs != nil {
			l.AdvisoryIDs = *wl.AdvisoryIDs
		}
	}
	return q, nil
}

// checkReport compares a QE report with the identity: MISCSELECT and ATTRIBUTES under their
// masks, MRSIGNER and ISVPRODID (QVL's enclave report checks).
func (q *QEIdentity) checkReport(r *sgx.ReportBody, raw []byte) error {
	misc := raw[16:20] // MISCSELECT, as laid out in the report
	for i := range misc {
		if misc[i]&q.MiscSelectMask[i] != q.MiscSelect[i] {
			return fmt.Errorf("QE MISCSELECT %x under mask %x is not the expected %x", misc, q.MiscSelectMask, q.MiscSelect)
		}
	}
	attrs := raw[48:64] // flags ‖ XFRM
	for i := range attrs {
		if attrs[i]&q.AttributesMask[i] != q.Attributes[i] {
			return fmt.Errorf("QE ATTRIBUTES %x under mask %x are not the expected %x", attrs, q.AttributesMask, q.Attributes)
		}
	}
	if r.MRSigner != q.MRSigner {
		return fmt.Errorf("QE MRSIGNER %x is not the expected %x", r.MRSigner, q.MRSigner)
	}
	if r.ISVProdID != q.ISVProdID {
		return fmt.Errorf("QE ISVPRODID %d is not the expected %d", r.ISVProdID, q.ISVProdID)
	}
	return nil
}

// matchLevel returns the index of the QE TCB level for a QE with ISVSVN svn, or -1: the level
// with the highest ISVSVN at or below svn (the first listed of equal ones), as in QVL.
func (q *QEIdentity) matchLevel(svn uint16) int {
	best := -1
	for i, l := range q.Levels {
		if l.ISVSVN <= svn && (best < 0 || l.ISVSVN > q.Levels[best].ISVSVN) {
			best = i
		}
	}
	return best
}
