package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
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

// verifyKeys are exactly the keys `quote verify --output json` prints: every key, null when
// unknown.
var verifyKeys = []string{"version", "att_key_type", "qe_svn", "pce_svn", "mrenclave", "mrsigner", "isvprodid", "isvsvn",
	"debug", "report_data", "fmspc", "pceid", "tcb_status", "advisory_ids", "crl_checked", "collateral_expired", "verified", "error"}

// decodeStrict decodes stdout as exactly one JSON document of type T, with no unknown key.
func decodeStrict[T any](t *testing.T, stdout string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output is not a %T document: %v\n%s", v, err, stdout)
	}
	if dec.More() {
		t.Fatalf("output has more than one JSON document:\n%s", stdout)
	}
	return v
}

func decodeVerify(t *testing.T, stdout string) jsonoutput.QuoteVerify {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("quote verify output is not JSON: %v\n%s", err, stdout)
	}
	keys := slices.Sorted(maps.Keys(m))
	want := slices.Sorted(slices.Values(verifyKeys))
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want exactly %v", keys, want)
	}
	return decodeStrict[jsonoutput.QuoteVerify](t, stdout)
}

// str returns *p, or "<null>".
func str[T any](p *T) string {
	if p == nil {
		return "<null>"
	}
	return fmt.Sprint(*p)
}

func TestQuoteVerifyVectors(t *testing.T) {
	for _, v := range dcaptest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			at := v.VerificationTime.Format("2006-01-02T15:04:05Z")
			code, stdout, stderr := run(t, "quote", "verify", filepath.Join(v.Dir, "quote.bin"), "--collateral", v.Dir, "--at", at, "--output", "json")
			m := decodeVerify(t, stdout)
			if str(m.MREnclave) != v.Enclave.MREnclave || str(m.MRSigner) != v.Enclave.MRSigner || str(m.ReportData) != v.Enclave.ReportData {
				t.Errorf("identity = %s %s %s, want %s %s %s", str(m.MREnclave), str(m.MRSigner), str(m.ReportData), v.Enclave.MREnclave, v.Enclave.MRSigner, v.Enclave.ReportData)
			}
			if str(m.FMSPC) != strings.ToLower(v.PCK.FMSPC) || str(m.PCEID) != v.PCK.PCEID {
				t.Errorf("fmspc, pceid = %s %s, want %s %s (lowercase hex)", str(m.FMSPC), str(m.PCEID), strings.ToLower(v.PCK.FMSPC), v.PCK.PCEID)
			}
			if m.Debug == nil || *m.Debug != v.Expected.DebugEnclave || str(m.Version) != "3" || str(m.QESVN) != fmt.Sprint(v.Quote.QESVN) {
				t.Errorf("debug, version, qe_svn = %s %s %s", str(m.Debug), str(m.Version), str(m.QESVN))
			}
			if v.Expected.TCBStatus == nil {
				// No TCB Info or QE Identity upstream: not verified, status unknown, reason given.
				if code == 0 || m.Verified || m.TCBStatus != nil || m.Error == nil || !strings.Contains(stderr, "collateral missing") {
					t.Fatalf("exit %d, verified %v, tcb_status %s, error %s, stderr %q; want a failure naming the missing collateral", code, m.Verified, str(m.TCBStatus), str(m.Error), stderr)
				}
				return
			}
			if code != 0 || !m.Verified || m.Error != nil {
				t.Fatalf("exit %d, verified %v, error %s; want verified\n%s", code, m.Verified, str(m.Error), stderr)
			}
			if str(m.TCBStatus) != *v.Expected.TCBStatus {
				t.Errorf("tcb_status = %s, want %s", str(m.TCBStatus), *v.Expected.TCBStatus)
			}
			if m.AdvisoryIDs == nil || !slices.Equal(m.AdvisoryIDs, v.Expected.AdvisoryIDs) && !(len(m.AdvisoryIDs) == 0 && len(v.Expected.AdvisoryIDs) == 0) {
				t.Errorf("advisory_ids = %#v, want %v (an array, empty when none)", m.AdvisoryIDs, v.Expected.AdvisoryIDs)
			}
			_, hasCRL := v.Files["pck_crl"]
			if m.CRLChecked != (hasCRL && v.Files["pck_crl"] != nil) || m.CollateralExpired {
				t.Errorf("crl_checked, collateral_expired = %v %v", m.CRLChecked, m.CollateralExpired)
			}

			// After the collateral's window: still verified (exit 0), flagged expired.
			late := v.ValidWindow.To.Add(2e9).Format("2006-01-02T15:04:05Z")
			code, stdout, _ = run(t, "quote", "verify", filepath.Join(v.Dir, "quote.bin"), "--collateral", v.Dir, "--at", late, "--output", "json")
			m = decodeVerify(t, stdout)
			if code != 0 || !m.CollateralExpired {
				t.Errorf("at %s: exit %d, collateral_expired %v; want 0 and true", late, code, m.CollateralExpired)
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
	if m := decodeVerify(t, stdout); code != 0 || !m.Verified || str(m.TCBStatus) != "UpToDate" || !m.CRLChecked {
		t.Fatalf("simulated quote with the simulated root pinned: exit %d, %+v\n%s", code, m, stderr)
	}
	// Against Intel's root (the default) the simulated quote must fail, with the JSON still printed.
	code, stdout, stderr = run(t, "quote", "verify", qf, "--collateral", p.Dir(), "--output", "json")
	if m := decodeVerify(t, stdout); code == 0 || m.Verified || m.MREnclave == nil || !strings.Contains(stderr, "pinned root") {
		t.Fatalf("simulated quote against Intel's root: exit %d, %+v, stderr %q", code, m, stderr)
	}
	// A quote that does not parse: every field null, the reason in error.
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, q[:100], 0o644)
	code, stdout, _ = run(t, "quote", "verify", bad, "--collateral", p.Dir(), "--output", "json")
	if m := decodeVerify(t, stdout); code == 0 || m.MREnclave != nil || m.Error == nil {
		t.Fatalf("truncated quote: exit %d, %+v", code, m)
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
	m := decodeStrict[jsonoutput.QuoteInspect](t, stdout)
	if m.Version != 3 || m.Enclave.MREnclave != v.Enclave.MREnclave || m.PCK.FMSPC != strings.ToLower(v.PCK.FMSPC) || len(m.PCK.Chain) != 3 {
		t.Fatalf("inspect = %+v", m)
	}
	code, _, stderr = run(t, "quote", "inspect", "/nonexistent/quote.bin")
	if code == 0 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("missing file: exit %d, %q", code, stderr)
	}
}
