package verify

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// TCBInfo is Intel's SGX TCB Info for one FMSPC: the TCB levels of a platform type and their
// status. Versions 2 (PCS API v3: no "id", sgxtcbcompNNsvn fields) and 3 (PCS API v4: "id":
// "SGX", sgxtcbcomponents) are supported.
//
// A TCBInfo from [ParseTCBInfo] keeps the response body and the exact signed bytes. The
// Verifier evaluates the values it parses from those bytes itself, never these fields, so
// changing them does not change a verification.
type TCBInfo struct {
	ID                      string    // "SGX"; empty for version 2
	Version                 int       // 2 or 3
	IssueDate               time.Time // start of validity
	NextUpdate              time.Time // end of validity
	FMSPC                   [6]byte   // the platform type it describes
	PCEID                   [2]byte   // the PCE it describes
	TCBType                 int       // 0: levels compare component SVNs and PCESVN
	TCBEvaluationDataNumber int       // Intel's TCB recovery counter
	// Levels are the TCB levels in the order of the document (Intel lists them from the
	// highest TCB down).
	Levels []TCBLevel

	signedDoc
}

// TCBLevel is one TCB level of TCB Info.
type TCBLevel struct {
	CompSVN     [16]uint8 // SGX TCB component SVNs 1..16
	PCESVN      uint16    // PCE security version
	TCBDate     time.Time // date of the TCB recovery the level belongs to
	Status      TCBStatus // status of platforms at this level
	AdvisoryIDs []string  // Intel security advisories that apply; nil when none are listed
}

// ParseTCBInfo parses a PCS TCB Info response body {"tcbInfo":{...},"signature":"<hex>"} of at
// most [MaxCollateralItemSize] bytes. It does not verify the signature. Missing required fields,
// wrong types, values out of range, TDX TCB Info and unknown TCB statuses are errors naming the
// field; unknown fields are ignored.
func ParseTCBInfo(body []byte) (*TCBInfo, error) {
	t, err := parseTCBInfo(body)
	if err != nil {
		return nil, fmt.Errorf("TCB Info: %w", err)
	}
	return t, nil
}

// wireTCBInfo is the JSON shape of TCB Info versions 2 and 3. Pointers tell absent fields
// apart; unknown fields are ignored.
type wireTCBInfo struct {
	ID                      *string         `json:"id"`
	Version                 *int64          `json:"version"`
	IssueDate               *string         `json:"issueDate"`
	NextUpdate              *string         `json:"nextUpdate"`
	FMSPC                   *string         `json:"fmspc"`
	PCEID                   *string         `json:"pceId"`
	TCBType                 *int64          `json:"tcbType"`
	TCBEvaluationDataNumber *int64          `json:"tcbEvaluationDataNumber"`
	TCBLevels               *[]wireTCBLevel `json:"tcbLevels"`
}

type wireTCBLevel struct {
	TCB         *wireTCB  `json:"tcb"`
	TCBDate     *string   `json:"tcbDate"`
	TCBStatus   *string   `json:"tcbStatus"`
	AdvisoryIDs *[]string `json:"advisoryIDs"`
}

// wireTCB holds both versions: sgxtcbcomponents (version 3) or sgxtcbcompNNsvn (version 2).
type wireTCB struct {
	Components *[]struct {
		SVN *int64 `json:"svn"`
	} `json:"sgxtcbcomponents"`
	PCESVN *int64 `json:"pcesvn"`
	C01    *int64 `json:"sgxtcbcomp01svn"`
	C02    *int64 `json:"sgxtcbcomp02svn"`
	C03    *int64 `json:"sgxtcbcomp03svn"`
	C04    *int64 `json:"sgxtcbcomp04svn"`
	C05    *int64 `json:"sgxtcbcomp05svn"`
	C06    *int64 `json:"sgxtcbcomp06svn"`
	C07    *int64 `json:"sgxtcbcomp07svn"`
	C08    *int64 `json:"sgxtcbcomp08svn"`
	C09    *int64 `json:"sgxtcbcomp09svn"`
	C10    *int64 `json:"sgxtcbcomp10svn"`
	C11    *int64 `json:"sgxtcbcomp11svn"`
	C12    *int64 `json:"sgxtcbcomp12svn"`
	C13    *int64 `json:"sgxtcbcomp13svn"`
	C14    *int64 `json:"sgxtcbcomp14svn"`
	C15    *int64 `json:"sgxtcbcomp15svn"`
	C16    *int64 `json:"sgxtcbcomp16svn"`
}

func parseTCBInfo(body []byte) (*TCBInfo, error) {
	var w wireTCBInfo
	doc, err := parseSigned(body, "tcbInfo", &w)
	if err != nil {
		return nil, err
	}
	t := &TCBInfo{signedDoc: doc}
	version, err := intField("tcbInfo.version", w.Version, 2, 3)
	if err != nil {
		return nil, err
	}
	t.Version = int(version)
	switch {
	case w.ID != nil:
		t.ID = *w.ID
	case t.Version == 3:
		return nil, fmt.Errorf("tcbInfo.id: required field is missing or null")
	}
	switch t.ID {
	case "SGX":
	case "TDX":
		return nil, fmt.Errorf(`tcbInfo.id: "TDX" TCB Info is for TDX quotes; expected "SGX"`)
	default:
		if t.ID != "" || t.Version == 3 {
			return nil, fmt.Errorf(`tcbInfo.id: expected "SGX", found %q`, t.ID)
		}
	}
	var fmspc, pceID []byte
	var tcbType, evalNum int64
	var levels []wireTCBLevel
	err = firstErr(
		into(&t.IssueDate)(timeField("tcbInfo.issueDate", w.IssueDate)),
		into(&t.NextUpdate)(timeField("tcbInfo.nextUpdate", w.NextUpdate)),
		into(&fmspc)(hexField("tcbInfo.fmspc", w.FMSPC, len(t.FMSPC))),
		into(&pceID)(hexField("tcbInfo.pceId", w.PCEID, len(t.PCEID))),
		into(&tcbType)(intField("tcbInfo.tcbType", w.TCBType, 0, 0)),
		into(&evalNum)(intField("tcbInfo.tcbEvaluationDataNumber", w.TCBEvaluationDataNumber, 0, 1<<31-1)),
		into(&levels)(required("tcbInfo.tcbLevels", w.TCBLevels)),
	)
	if err != nil {
		return nil, err
	}
	if err := window("tcbInfo", t.IssueDate, t.NextUpdate); err != nil {
		return nil, err
	}
	if len(levels) == 0 || len(levels) > maxLevels {
		return nil, fmt.Errorf("tcbInfo.tcbLevels: expected 1..%d levels, found %d", maxLevels, len(levels))
	}
	copy(t.FMSPC[:], fmspc)
	copy(t.PCEID[:], pceID)
	t.TCBType, t.TCBEvaluationDataNumber = int(tcbType), int(evalNum)
	t.Levels = make([]TCBLevel, len(levels))
	for i := range levels {
		if err := parseTCBLevel(fmt.Sprintf("tcbInfo.tcbLevels[%d]", i), &levels[i], t.Version, &t.Levels[i]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func parseTCBLevel(path string, w *wireTCBLevel, version int, l *TCBLevel) error {
	tcb, err := required(path+".tcb", w.TCB)
	if err != nil {
		return err
	}
	var pcesvn int64
	err = firstErr(
		into(&l.TCBDate)(timeField(path+".tcbDate", w.TCBDate)),
		into(&l.Status)(statusField(path+".tcbStatus", w.TCBStatus)),
		into(&pcesvn)(intField(path+".tcb.pcesvn", tcb.PCESVN, 0, 0xffff)),
	)
	if err != nil {
		return err
	}
	l.PCESVN = uint16(pcesvn)
	if w.AdvisoryIDs != nil {
		l.AdvisoryIDs = *w.AdvisoryIDs
	}
	var svns [16]*int64
	var names [16]string
	if version == 2 {
		svns = [16]*int64{tcb.C01, tcb.C02, tcb.C03, tcb.C04, tcb.C05, tcb.C06, tcb.C07, tcb.C08,
			tcb.C09, tcb.C10, tcb.C11, tcb.C12, tcb.C13, tcb.C14, tcb.C15, tcb.C16}
		for i := range names {
			names[i] = fmt.Sprintf("%s.tcb.sgxtcbcomp%02dsvn", path, i+1)
		}
	} else {
		comps, err := required(path+".tcb.sgxtcbcomponents", tcb.Components)
		if err != nil {
			return err
		}
		if len(comps) != len(svns) {
			return fmt.Errorf("%s.tcb.sgxtcbcomponents: expected %d components, found %d", path, len(svns), len(comps))
		}
		for i := range comps {
			svns[i] = comps[i].SVN
			names[i] = fmt.Sprintf("%s.tcb.sgxtcbcomponents[%d].svn", path, i)
		}
	}
	for i, p := range svns {
		svn, err := intField(names[i], p, 0, 255)
		if err != nil {
			return err
		}
		l.CompSVN[i] = uint8(svn)
	}
	return nil
}

// matchLevel returns the index of the TCB level that applies to a platform with the PCK
// certificate's TCB, or -1. Like Intel's QVL it considers the levels from the highest down
// (ordered by component SVNs, then PCESVN; of equal levels the first listed) and takes the first
// whose 16 component SVNs and PCESVN are all at or below the platform's.
func (t *TCBInfo) matchLevel(tcb *sgx.PCKTCB) int {
	best := -1
	for i := range t.Levels {
		l := &t.Levels[i]
		if !l.coveredBy(tcb) {
			continue
		}
		if best < 0 || l.higherThan(&t.Levels[best]) {
			best = i
		}
	}
	return best
}

func (l *TCBLevel) coveredBy(tcb *sgx.PCKTCB) bool {
	for i, svn := range l.CompSVN {
		if svn > tcb.CompSVN[i] {
			return false
		}
	}
	return l.PCESVN <= tcb.PCESVN
}

func (l *TCBLevel) higherThan(m *TCBLevel) bool {
	if c := bytes.Compare(l.CompSVN[:], m.CompSVN[:]); c != 0 {
		return c > 0
	}
	return l.PCESVN > m.PCESVN
}
