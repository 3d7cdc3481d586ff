// Package dcaptest loads the real Intel SGX DCAP test vectors in the module's testdata/dcap
// directory for tests of the sgx packages. Each vector is a real quote with (some of) its
// collateral and the outcome an independent checker recorded; see testdata/dcap/README.md.
package dcaptest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Vector is one folder of testdata/dcap with its vector.json.
type Vector struct {
	Name string
	Dir  string // absolute path of the folder

	Files            map[string]*string `json:"files"`
	VerificationTime time.Time          `json:"verification_time"`
	ValidWindow      struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	} `json:"collateral_valid_window"`
	Expected struct {
		SignatureValid        bool            `json:"signature_valid"`
		Checks                map[string]bool `json:"checks"`
		TCBStatus             *string         `json:"tcb_status"`
		PlatformTCBStatus     *string         `json:"platform_tcb_status"`
		PlatformTCBLevelIndex *int            `json:"platform_tcb_level_index"`
		PlatformTCBDate       *time.Time      `json:"platform_tcb_date"`
		AdvisoryIDs           []string        `json:"advisory_ids"`
		QETCBStatus           *string         `json:"qe_tcb_status"`
		QETCBLevelISVSVN      *int            `json:"qe_tcb_level_isvsvn"`
		DebugEnclave          bool            `json:"debug_enclave"`
	} `json:"expected"`
	Quote struct {
		Length     int      `json:"length"`
		Version    int      `json:"version"`
		AttKeyType int      `json:"att_key_type"`
		TEEType    int      `json:"tee_type"`
		QESVN      int      `json:"qe_svn"`
		PCESVN     int      `json:"pce_svn"`
		QEVendorID string   `json:"qe_vendor_id"`
		UserData   string   `json:"user_data"`
		AuthLen    int      `json:"qe_auth_data_len"`
		CertType   int      `json:"cert_data_type"`
		CertLen    int      `json:"cert_data_len"`
		ChainOrder []string `json:"pck_chain_order_in_quote"`
	} `json:"quote"`
	Enclave  Report `json:"enclave"`
	QEReport Report `json:"qe_report"`
	PCK      struct {
		CA                 string  `json:"ca"`
		CAType             string  `json:"ca_type"`
		FMSPC              string  `json:"fmspc"`
		PCEID              string  `json:"pce_id"`
		SGXType            int     `json:"sgx_type"`
		PCESVN             int     `json:"pcesvn"`
		TCBCompSVNs        []int   `json:"tcb_comp_svns"`
		CPUSVN             string  `json:"cpusvn"`
		PPID               string  `json:"ppid"`
		PlatformInstanceID *string `json:"platform_instance_id"`
		Configuration      *struct {
			DynamicPlatform bool `json:"dynamicPlatform"`
			CachedKeys      bool `json:"cachedKeys"`
			SMTEnabled      bool `json:"SMTEnabled"`
		} `json:"configuration"`
		LeafSerial string `json:"leaf_serial"`
	} `json:"pck"`
	Collateral struct {
		TCBInfo *struct {
			Version                 int        `json:"version"`
			FMSPC                   string     `json:"fmspc"`
			TCBEvaluationDataNumber int        `json:"tcb_evaluation_data_number"`
			IssueDate               time.Time  `json:"issue_date"`
			NextUpdate              time.Time  `json:"next_update"`
			SignedBody              SignedBody `json:"signed_body"`
		} `json:"tcb_info"`
		QEIdentity *struct {
			Version                 int        `json:"version"`
			TCBEvaluationDataNumber int        `json:"tcb_evaluation_data_number"`
			IssueDate               time.Time  `json:"issue_date"`
			NextUpdate              time.Time  `json:"next_update"`
			SignedBody              SignedBody `json:"signed_body"`
		} `json:"qe_identity"`
	} `json:"collateral"`
}

// Report is the recorded content of an enclave or QE report body.
type Report struct {
	MREnclave  string `json:"mrenclave"`
	MRSigner   string `json:"mrsigner"`
	ISVProdID  int    `json:"isvprodid"`
	ISVSVN     int    `json:"isvsvn"`
	Debug      bool   `json:"debug"`
	Attributes string `json:"attributes_flags"`
	XFRM       string `json:"xfrm"`
	MiscSelect string `json:"miscselect"`
	CPUSVN     string `json:"cpusvn"`
	ReportData string `json:"reportdata"`
}

// SignedBody locates the signed JSON value inside a collateral file.
type SignedBody struct {
	Offset int    `json:"byte_offset"`
	Length int    `json:"byte_length"`
	SHA256 string `json:"sha256"`
}

// Root returns the absolute path of the module's testdata/dcap directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "dcap")
}

// Load returns every vector, failing the test if the directory cannot be read.
func Load(t testing.TB) []*Vector {
	t.Helper()
	root := Root()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("read test vectors: %v", err)
	}
	var vs []*Vector
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "vector.json"))
		if err != nil {
			t.Fatalf("read vector %s: %v", e.Name(), err)
		}
		v := &Vector{Name: e.Name(), Dir: dir}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("decode vector %s: %v", e.Name(), err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatalf("no test vectors in %s", root)
	}
	return vs
}

// File returns the content of the vector's file with the given role (a key of "files" in
// vector.json, such as "quote" or "tcb_info"), or nil when the vector has none.
func (v *Vector) File(t testing.TB, role string) []byte {
	t.Helper()
	name := v.Files[role]
	if name == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(v.Dir, *name))
	if err != nil {
		t.Fatalf("vector %s: read %s: %v", v.Name, role, err)
	}
	return b
}
