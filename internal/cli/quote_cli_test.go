package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/dcaptest"
	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// run runs the cloister command line in process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// verifyKeys are exactly the keys `quote verify --output json` prints.
var verifyKeys = []string{"version", "att_key_type", "qe_svn", "pce_svn", "mrenclave", "mrsigner", "isvprodid", "isvsvn",
	"debug", "report_data", "fmspc", "pceid", "tcb_status", "advisory_ids", "crl_checked", "collateral_expired", "verified", "error"}

func decodeVerify(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("quote verify output is not JSON: %v\n%s", err, stdout)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(verifyKeys))
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want exactly %v", keys, want)
	}
	return m
}

func TestQuoteVerifyVectors(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			at := v.VerificationTime.Format("2006-01-02T15:04:05Z")
			code, stdout, stderr := run(t, "quote", "verify", filepath.Join(v.Dir, "quote.bin"), "--collateral", v.Dir, "--at", at, "--output", "json")
			m := decodeVerify(t, stdout)
			if m["mrenclave"] != v.Enclave.MREnclave || m["mrsigner"] != v.Enclave.MRSigner || m["report_data"] != v.Enclave.ReportData {
				t.Errorf("identity = %v %v %v, want %s %s %s", m["mrenclave"], m["mrsigner"], m["report_data"], v.Enclave.MREnclave, v.Enclave.MRSigner, v.Enclave.ReportData)
			}
			if m["fmspc"] != strings.ToLower(v.PCK.FMSPC) || m["pceid"] != v.PCK.PCEID {
				t.Errorf("fmspc, pceid = %v %v, want %s %s (lowercase hex)", m["fmspc"], m["pceid"], strings.ToLower(v.PCK.FMSPC), v.PCK.PCEID)
			}
			if m["debug"] != v.Expected.DebugEnclave || m["version"] != 3.0 || m["qe_svn"] != float64(v.Quote.QESVN) {
				t.Errorf("debug, version, qe_svn = %v %v %v", m["debug"], m["version"], m["qe_svn"])
			}
			if v.Expected.TCBStatus == nil {
				// No TCB Info or QE Identity upstream: not verified, status unknown, reason given.
				if code == 0 || m["verified"] != false || m["tcb_status"] != nil || m["error"] == nil || !strings.Contains(stderr, "collateral missing") {
					t.Fatalf("exit %d, verified %v, tcb_status %v, error %v, stderr %q; want a failure naming the missing collateral", code, m["verified"], m["tcb_status"], m["error"], stderr)
				}
				return
			}
			if code != 0 || m["verified"] != true || m["error"] != nil {
				t.Fatalf("exit %d, verified %v, error %v; want verified\n%s", code, m["verified"], m["error"], stderr)
			}
			if m["tcb_status"] != *v.Expected.TCBStatus {
				t.Errorf("tcb_status = %v, want %s", m["tcb_status"], *v.Expected.TCBStatus)
			}
			var adv []string
			for _, a := range m["advisory_ids"].([]any) {
				adv = append(adv, a.(string))
			}
			if !slices.Equal(adv, v.Expected.AdvisoryIDs) && !(len(adv) == 0 && len(v.Expected.AdvisoryIDs) == 0) {
				t.Errorf("advisory_ids = %v, want %v", adv, v.Expected.AdvisoryIDs)
			}
			_, hasCRL := v.Files["pck_crl"]
			if m["crl_checked"] != (hasCRL && v.Files["pck_crl"] != nil) || m["collateral_expired"] != false {
				t.Errorf("crl_checked, collateral_expired = %v %v", m["crl_checked"], m["collateral_expired"])
			}

			// After the collateral's window: still verified (exit 0), flagged expired.
			late := v.ValidWindow.To.Add(2e9).Format("2006-01-02T15:04:05Z")
			code, stdout, _ = run(t, "quote", "verify", filepath.Join(v.Dir, "quote.bin"), "--collateral", v.Dir, "--at", late, "--output", "json")
			m = decodeVerify(t, stdout)
			if code != 0 || m["collateral_expired"] != true {
				t.Errorf("at %s: exit %d, collateral_expired %v; want 0 and true", late, code, m["collateral_expired"])
			}
		})
	}
}

func TestQuoteVerifySimulated(t *testing.T) {
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Quote(sgx.ReportBody{MREnclave: [32]byte{7}, Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit}})
	if err != nil {
		t.Fatal(err)
	}
	qf := filepath.Join(dir, "quote.bin")
	if err := os.WriteFile(qf, q, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "quote", "verify", qf, "--collateral", p.Dir(), "--root", filepath.Join(p.Dir(), "root_ca.pem"), "--output", "json")
	if m := decodeVerify(t, stdout); code != 0 || m["verified"] != true || m["tcb_status"] != "UpToDate" || m["crl_checked"] != true {
		t.Fatalf("simulated quote with the simulated root pinned: exit %d, %v\n%s", code, m, stderr)
	}
	// Against Intel's root (the default) the simulated quote must fail, with the JSON still printed.
	code, stdout, stderr = run(t, "quote", "verify", qf, "--collateral", p.Dir(), "--output", "json")
	if m := decodeVerify(t, stdout); code == 0 || m["verified"] != false || m["mrenclave"] == nil || !strings.Contains(stderr, "pinned root") {
		t.Fatalf("simulated quote against Intel's root: exit %d, %v, stderr %q", code, m, stderr)
	}
	// A quote that does not parse: every field null, the reason in error.
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, q[:100], 0o644)
	code, stdout, _ = run(t, "quote", "verify", bad, "--collateral", p.Dir(), "--output", "json")
	if m := decodeVerify(t, stdout); code == 0 || m["mrenclave"] != nil || m["error"] == nil {
		t.Fatalf("truncated quote: exit %d, %v", code, m)
	}
	if code, _, stderr := run(t, "quote", "verify", qf, "--collateral", p.Dir(), "--at", "yesterday"); code == 0 || !strings.Contains(stderr, "RFC 3339") {
		t.Fatalf("bad --at: exit %d, %q", code, stderr)
	}
}

func TestQuoteInspect(t *testing.T) {
	v := dcaptest.Load(t)[0]
	code, stdout, stderr := run(t, "quote", "inspect", filepath.Join(v.Dir, "quote.bin"), "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m struct {
		Version int `json:"version"`
		Enclave struct {
			MREnclave string `json:"mrenclave"`
		} `json:"enclave"`
		PCK struct {
			FMSPC string   `json:"fmspc"`
			Chain []string `json:"chain"`
		} `json:"pck"`
	}
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Version != 3 || m.Enclave.MREnclave != v.Enclave.MREnclave || m.PCK.FMSPC != strings.ToLower(v.PCK.FMSPC) || len(m.PCK.Chain) != 3 {
		t.Fatalf("inspect = %+v", m)
	}
	code, _, stderr = run(t, "quote", "inspect", "/nonexistent/quote.bin")
	if code == 0 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("missing file: exit %d, %q", code, stderr)
	}
}
