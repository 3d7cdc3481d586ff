package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// obj is a JSON object under construction.
type obj = map[string]any

// arr is a JSON array under construction.
type arr = []any

const (
	hexA = "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
	hexB = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
)

// testCert returns the PEM certificate testdata/certs/<name>.pem.
func testCert(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/certs/" + name + ".pem")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// baseDoc returns a small valid manifest that the table tests change one thing in.
func baseDoc(tb testing.TB) obj {
	tb.Helper()
	return obj{
		"packages": obj{
			"web": obj{"mrsigner": hexA, "isvprodid": 1, "min_isvsvn": 1},
			"db":  obj{"mrenclave": hexB},
		},
		"workloads": obj{
			"server": obj{"package": "web", "env": obj{"TOKEN": "{{.Secrets.token.Hex}}"}},
		},
		"secrets": obj{
			"token":  obj{"type": "symmetric-key", "size": 256},
			"upload": obj{"type": "user-defined"},
			"tls":    obj{"type": "certificate"},
		},
		"users": obj{"alice": obj{"certificate": testCert(tb, "alice"), "roles": arr{"ops"}}},
		"roles": obj{"ops": obj{"resource": "secrets", "names": arr{"upload"}, "actions": arr{"read", "write"}}},
	}
}

// at returns the object at the path of keys in o, creating objects on the way.
func at(o obj, keys ...string) obj {
	for _, k := range keys {
		next, ok := o[k].(obj)
		if !ok {
			next = obj{}
			o[k] = next
		}
		o = next
	}
	return o
}

// marshal encodes a test document.
func marshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mustParse parses a document that must be valid.
func mustParse(tb testing.TB, b []byte) *Manifest {
	tb.Helper()
	m, err := Parse(b)
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return m
}

// fieldErrors flattens err into its FieldErrors, failing on anything else.
func fieldErrors(tb testing.TB, err error) []*FieldError {
	tb.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		fe, ok := errors.AsType[*FieldError](e)
		if !ok {
			tb.Fatalf("error %v (%T) is not a *FieldError", e, e)
		}
		out = append(out, fe)
	}
	if err != nil {
		walk(err)
	}
	return out
}

// wantFieldError checks that err holds exactly one FieldError (or count, if not 0) and
// that one of them is at path with msg in its message.
func wantFieldError(tb testing.TB, err error, path, msg string, count int) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("error = nil; want %s: …%s…", path, msg)
	}
	fes := fieldErrors(tb, err)
	if count == 0 {
		count = 1
	}
	if len(fes) != count {
		tb.Errorf("got %d problems; want %d:\n%v", len(fes), count, err)
	}
	for _, fe := range fes {
		if fe.Path == path && strings.Contains(fe.Msg, msg) {
			return
		}
	}
	tb.Errorf("no problem at %s containing %q in:\n%v", path, msg, err)
}
