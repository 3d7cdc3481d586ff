package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		path, msg string
		count     int
	}{
		{"array at top", `[]`, "$", "expected an object, found an array", 0},
		{"string at top", `"x"`, "$", "expected an object, found a string", 0},
		{"empty document", ``, "$", "found the end of the document", 0},
		{"trailing object", `{} {}`, "$", "expected nothing after the manifest object, found more data at byte 2 (the next value starts at line 1, column 4)", 0},
		{"trailing garbage", "{}\n x", "$", "found more data at byte 2 (the next value starts at line 2, column 2)", 0},
		{"unknown top-level key", `{"recovery": {}}`, "$.recovery", `unknown key "recovery"; expected one of: $schema, settings`, 0},
		{"unknown nested key", `{"settings": {"trust_domian": "a"}}`, "$.settings.trust_domian", "expected one of: trust_domain, workload_certificate_validity", 0},
		{"duplicate key", `{"packages": {}, "packages": {}}`, "$.packages", `expected each key once, found "packages" again`, 0},
		{"duplicate map key", `{"secrets": {"a": {"type": "plain", "value": "1"}, "a": {"type": "plain", "value": "2"}}}`, "$.secrets.a", "found \"a\" again", 0},
		{"type error in map entry", `{"workloads": {"server": {"package": 1}}}`, "$.workloads.server.package", "expected a string, found a number", 0},
		{"type error in array", `{"workloads": {"s": {"argv": ["a", true]}}}`, "$.workloads.s.argv[1]", "expected a string, found a boolean", 0},
		{"object for string", `{"settings": {"trust_domain": {"a": [1, {}]}}}`, "$.settings.trust_domain", "expected a string, found an object", 0},
		{"array for object", `{"packages": []}`, "$.packages", "expected an object, found an array", 0},
		{"null not allowed", `{"packages": {"p": {"mrenclave": null}}}`, "$.packages.p.mrenclave", "expected a string, found null", 0},
		{"null integer", `{"packages": {"p": {"mrsigner": "` + hexA + `", "isvprodid": null, "min_isvsvn": 1}}}`, "$.packages.p.isvprodid", "expected an integer from 0 to 65535, found null", 0},
		{"uint16 overflow", `{"packages": {"p": {"mrsigner": "` + hexA + `", "isvprodid": 65536, "min_isvsvn": 1}}}`, "$.packages.p.isvprodid", "expected an integer from 0 to 65535, found 65536", 0},
		{"negative uint16", `{"packages": {"p": {"mrsigner": "` + hexA + `", "isvprodid": -1, "min_isvsvn": 1}}}`, "$.packages.p.isvprodid", "found -1", 0},
		{"fraction", `{"secrets": {"k": {"type": "symmetric-key", "size": 256.0}}}`, "$.secrets.k.size", "expected an integer, found a number with a fraction or exponent", 0},
		{"exponent", `{"secrets": {"k": {"type": "symmetric-key", "size": 2e2}}}`, "$.secrets.k.size", "fraction or exponent", 0},
		{"int overflow", `{"secrets": {"k": {"type": "symmetric-key", "size": 99999999999999999999}}}`, "$.secrets.k.size", "expected an integer, found 99999999999999999999", 0},
		{"bad duration", `{"settings": {"workload_certificate_validity": "1 day"}}`, "$.settings.workload_certificate_validity", `expected a duration such as "24h" or "90m", found "1 day"`, 0},
		{"duration number", `{"settings": {"workload_certificate_validity": 86400}}`, "$.settings.workload_certificate_validity", "expected a string, found a number", 0},
		{"quoted path key", `{"workloads": {"s": {"package": "p", "files": {"/a b": 1}}}}`, `$.workloads.s.files["/a b"]`, "expected a string, found a number", 0},
		{"truncated", `{"packages": {`, "$.packages", "found the end of the document", 0},
		{"syntax error", `{"packages": {"a" 1}}`, "$.packages.a", "invalid JSON at byte 18: invalid character '1' after object key (line 1, column 19)", 0},
		{"syntax error on line 3", "{\n  \"packages\": {\n    \"a\" 1}}", "$.packages.a", "invalid JSON at byte 26: invalid character '1' after object key (line 3, column 9)", 0},
		{"syntax error after non-ASCII", "{\"$schema\": \"ü\",\n \"settings\": {\"trust_domain\": \"é\" x}}", "$.settings", "invalid JSON at byte 53: invalid character 'x' after object key:value pair (line 2, column 35)", 0},
		{"comment", `{/* no */}`, "$", "invalid JSON", 0},
		{"long key shortened", `{"` + strings.Repeat("k", 500) + `": 1}`, `$["` + strings.Repeat("k", maxQuoted) + `"… (500 bytes)]`, "unknown key", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			if m != nil {
				t.Errorf("Parse(%q) returned a manifest with error %v", tc.doc, err)
			}
			wantFieldError(t, err, tc.path, tc.msg, tc.count)
		})
	}
}

func TestParseReportsEveryDecodingProblem(t *testing.T) {
	doc := `{"settings": {"x": 1, "trust_domain": 2}, "packages": {"p": {"debug": "yes"}}, "roles": 3}`
	_, err := Parse([]byte(doc))
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	want := []string{"$.settings.x", "$.settings.trust_domain", "$.packages.p.debug", "$.roles"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("problem paths = %v; want %v", paths, want)
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		doc := []byte(`{"$schema": "` + strings.Repeat("x", MaxSize) + `"}`)
		_, err := Parse(doc)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Parse(%d bytes) = %v; want ErrTooLarge", len(doc), err)
		}
		wantFieldError(t, err, "$", "expected at most 4194304", 0)
	})
	t.Run("at size limit", func(t *testing.T) {
		doc := []byte(`{"$schema": "` + strings.Repeat("x", MaxSize-15) + `"}`)
		if len(doc) != MaxSize {
			t.Fatalf("test document is %d bytes; want %d", len(doc), MaxSize)
		}
		mustParse(t, doc)
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		_, err := Parse([]byte("{\"$schema\": \"a\xffb\"}"))
		wantFieldError(t, err, "$", "not valid UTF-8 (first bad byte at offset 14)", 0)
	})
	t.Run("problem count", func(t *testing.T) {
		workloads := obj{}
		for i := range maxProblems + 500 {
			workloads[fmt.Sprintf("w%04d", i)] = obj{"package": "missing"}
		}
		_, err := Parse(marshal(t, obj{"workloads": workloads}))
		fes := fieldErrors(t, err)
		if len(fes) != maxProblems+1 {
			t.Fatalf("got %d problems; want %d plus a summary", len(fes), maxProblems)
		}
		if last := fes[len(fes)-1]; last.Path != "$" || !strings.Contains(last.Msg, "500 more problems not shown") {
			t.Errorf("last problem = %v; want a summary of the 500 dropped", last)
		}
	})
}

func TestParseNullAndEmptyAdvisories(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		wantNil     bool
		allowed     bool // whether INTEL-SA-00615 is acceptable
	}{
		{"absent", "", true, true},
		{"null", `, "advisories": null`, true, true},
		{"empty", `, "advisories": []`, false, false},
		{"listed", `, "advisories": ["INTEL-SA-00615"]`, false, true},
		{"other", `, "advisories": ["INTEL-SA-00657"]`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, []byte(`{"packages": {"p": {"mrenclave": "`+hexA+`"`+tc.value+`}}}`))
			p := m.Packages["p"]
			if (p.Advisories == nil) != tc.wantNil {
				t.Errorf("Advisories = %v; want nil = %v", p.Advisories, tc.wantNil)
			}
			if got := p.AdvisoryAllowed("INTEL-SA-00615"); got != tc.allowed {
				t.Errorf("AdvisoryAllowed = %v; want %v", got, tc.allowed)
			}
		})
	}
}
