package sim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// metadataFormat is the format version of platform.json.
const metadataFormat = "cloister-sim-platform-v1"

// insecureWarning is repeated in platform.json; README-SIMULATION.txt says it at length.
const insecureWarning = "INSECURE SIMULATION, NOT Intel SGX: anyone who can read this directory can forge " +
	"quotes for any enclave, TCB status and report data. Pin root_ca.pem only in tests and demos."

// metadata is the content of platform.json. Keys are snake_case, byte strings lowercase hex.
type metadata struct {
	Format  string        `json:"format"`
	Warning string        `json:"warning"`
	Created time.Time     `json:"created"`
	FMSPC   string        `json:"fmspc"`
	PCEID   string        `json:"pce_id"`
	SGXType int           `json:"sgx_type"`
	PCKCA   sgx.PCKCAType `json:"pck_ca_type"`
	PCK     pckMetadata   `json:"pck"`
	QE      qeMetadata    `json:"qe"`
}

// pckMetadata repeats what the PCK certificate's SGX extension says, for people and scripts.
type pckMetadata struct {
	TCBCompSVNs []int  `json:"tcb_comp_svns"`
	PCESVN      uint16 `json:"pcesvn"`
	CPUSVN      string `json:"cpusvn"`
	PPID        string `json:"ppid"`
	LeafSerial  string `json:"leaf_serial"`
}

// qeMetadata is the simulated Quoting Enclave. Load takes the QE identity from here.
type qeMetadata struct {
	MREnclave       string `json:"mrenclave"`
	MRSigner        string `json:"mrsigner"`
	ISVProdID       uint16 `json:"isvprodid"`
	ISVSVN          uint16 `json:"isvsvn"`
	AttributesFlags uint64 `json:"attributes_flags"`
	XFRM            uint64 `json:"xfrm"`
	MiscSelect      uint32 `json:"miscselect"`
	// QEID is the platform identifier the QE puts in the first 16 bytes of the quote
	// header's user data.
	QEID string `json:"qe_id"`
}

func newMetadata(created time.Time, caType sgx.PCKCAType, ext *sgx.PCKExtensions, leafSerial []byte, qe QEIdentity, qeID [16]byte) metadata {
	svns := make([]int, len(ext.TCB.CompSVN))
	for i, s := range ext.TCB.CompSVN {
		svns[i] = int(s)
	}
	return metadata{
		Format:  metadataFormat,
		Warning: insecureWarning,
		Created: created,
		FMSPC:   hex.EncodeToString(ext.FMSPC[:]),
		PCEID:   hex.EncodeToString(ext.PCEID[:]),
		SGXType: int(ext.SGXType),
		PCKCA:   caType,
		PCK: pckMetadata{
			TCBCompSVNs: svns,
			PCESVN:      ext.TCB.PCESVN,
			CPUSVN:      hex.EncodeToString(ext.TCB.CPUSVN[:]),
			PPID:        hex.EncodeToString(ext.PPID[:]),
			LeafSerial:  hex.EncodeToString(leafSerial),
		},
		QE: qeMetadata{
			MREnclave:       hex.EncodeToString(qe.MREnclave[:]),
			MRSigner:        hex.EncodeToString(qe.MRSigner[:]),
			ISVProdID:       qe.ISVProdID,
			ISVSVN:          qe.ISVSVN,
			AttributesFlags: qe.Attributes.Flags,
			XFRM:            qe.Attributes.XFRM,
			MiscSelect:      qe.MiscSelect,
			QEID:            hex.EncodeToString(qeID[:]),
		},
	}
}

// parseMetadata decodes platform.json strictly: unknown members and trailing data are errors.
func parseMetadata(b []byte) (metadata, error) {
	var m metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, err
	}
	if dec.More() {
		return m, errors.New("unexpected data after the JSON object")
	}
	if m.Format != metadataFormat {
		return m, fmt.Errorf("format: expected %q, found %q", metadataFormat, m.Format)
	}
	return m, nil
}

// qeIdentity returns the QE identity and QE ID that m describes.
func (m *metadata) qeIdentity() (QEIdentity, [16]byte, error) {
	qe := QEIdentity{
		ISVProdID:  m.QE.ISVProdID,
		ISVSVN:     m.QE.ISVSVN,
		Attributes: sgx.Attributes{Flags: m.QE.AttributesFlags, XFRM: m.QE.XFRM},
		MiscSelect: m.QE.MiscSelect,
	}
	var qeID [16]byte
	err := errors.Join(
		decodeHex("qe.mrenclave", m.QE.MREnclave, qe.MREnclave[:]),
		decodeHex("qe.mrsigner", m.QE.MRSigner, qe.MRSigner[:]),
		decodeHex("qe.qe_id", m.QE.QEID, qeID[:]),
	)
	return qe, qeID, err
}

// checkPCK reports every difference between m and the PCK certificate's extension and CA.
func (m *metadata) checkPCK(ext *sgx.PCKExtensions, caType sgx.PCKCAType) error {
	var errs []error
	check := func(field string, want, found any) {
		if fmt.Sprint(want) != fmt.Sprint(found) {
			errs = append(errs, fmt.Errorf("%s: PCK certificate has %v, found %v", field, want, found))
		}
	}
	check("fmspc", hex.EncodeToString(ext.FMSPC[:]), m.FMSPC)
	check("pce_id", hex.EncodeToString(ext.PCEID[:]), m.PCEID)
	check("sgx_type", int(ext.SGXType), m.SGXType)
	check("pck_ca_type", caType, m.PCKCA)
	check("pck.pcesvn", ext.TCB.PCESVN, m.PCK.PCESVN)
	check("pck.cpusvn", hex.EncodeToString(ext.TCB.CPUSVN[:]), m.PCK.CPUSVN)
	svns := make([]int, len(ext.TCB.CompSVN))
	for i, s := range ext.TCB.CompSVN {
		svns[i] = int(s)
	}
	check("pck.tcb_comp_svns", svns, m.PCK.TCBCompSVNs)
	return errors.Join(errs...)
}

func decodeHex(field, s string, dst []byte) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%s: expected hex, found %q: %w", field, s, err)
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%s: expected %d bytes, found %d", field, len(dst), len(b))
	}
	copy(dst, b)
	return nil
}
