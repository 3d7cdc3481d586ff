package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks, for any input: Parse does not panic; a rejected document yields only
// bounded *FieldErrors; an accepted one validates, keeps its bytes and digest, is accepted
// by the JSON Schema too, renders every workload with placeholder values (which Validate
// dry-ran), and survives a round trip through encoding/json unchanged in meaning.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed documents in testdata (%v)", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(marshal(f, baseDoc(f)))
	f.Add(renderDoc(f))
	for _, doc := range []string{
		``, `{}`, `[]`, `null`, `{} {}`, `{"packages": {"a" 1}}`, `{"packages": {}, "packages": {}}`,
		`{"workloads": {"w": {"package": "p", "env": {"A": "{{.Secrets.x.Hex}}"}}}}`,
		`{"workloads": {"w": {"package": "p", "files": {"/a": "{{range .}}{{end}}"}}}}`,
		`{"settings": {"workload_certificate_validity": "1.5h"}}`,
		`{"packages": {"p": {"mrenclave": "` + hexA + `", "advisories": null}}}`,
	} {
		f.Add([]byte(doc))
	}
	sch := compileSchema(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			checkRejection(t, b, err)
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted a manifest that Validate rejects: %v", err)
		}
		if m.Digest() != sha256.Sum256(b) || !bytes.Equal(m.Bytes(), b) {
			t.Fatalf("Parse did not keep the submitted bytes and their digest")
		}
		if err := schemaAccepts(sch, b); err != nil {
			t.Fatalf("Parse accepted a document the JSON Schema rejects: %v", err)
		}
		in := m.placeholderInput()
		for _, w := range sortedKeys(m.Workloads) {
			for _, s := range m.SecretsUsedBy(w) {
				if _, ok := m.Secrets[s]; !ok {
					t.Fatalf("SecretsUsedBy(%q) names undefined secret %q", w, s)
				}
			}
			if _, err := m.Render(w, in); err != nil {
				t.Fatalf("Render(%q) with placeholder values failed after the dry run passed: %v", w, err)
			}
		}
		encoded, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		again, err := Parse(encoded)
		if err != nil {
			t.Fatalf("re-parsing the encoded manifest: %v\n%s", err, encoded)
		}
		if d := Diff(m, again); d != nil {
			t.Fatalf("round trip changed %v", d)
		}
		checkWithMinISVSVN(t, m)
	})
}

// checkWithMinISVSVN: raising a package's min_isvsvn rewrites that number and nothing else.
func checkWithMinISVSVN(t *testing.T, m *Manifest) {
	for _, name := range sortedKeys(m.Packages) {
		p := m.Packages[name]
		if p.MinISVSVN == nil || *p.MinISVSVN == math.MaxUint16 {
			continue
		}
		svn := *p.MinISVSVN + 1
		b, err := m.WithMinISVSVN(name, svn)
		if err != nil {
			t.Fatalf("WithMinISVSVN(%q): %v", name, err)
		}
		raised, err := Parse(b)
		if err != nil {
			t.Fatalf("the manifest with package %q raised to %d does not parse: %v\n%s", name, svn, err, b)
		}
		want := []Change{{Path: keyPath(keyPath("$.packages", name), "min_isvsvn"), Kind: Changed}}
		if d := Diff(m, raised); !slices.Equal(d, want) || *raised.Packages[name].MinISVSVN != svn {
			t.Fatalf("raising package %q changed %v; want %v", name, d, want)
		}
	}
}

// checkRejection asserts the documented shape of Parse errors.
func checkRejection(t *testing.T, b []byte, err error) {
	t.Helper()
	fes := fieldErrors(t, err) // fails on anything but *FieldError
	if len(fes) == 0 || len(fes) > maxProblems+1 {
		t.Fatalf("Parse returned %d problems; want 1 to %d", len(fes), maxProblems+1)
	}
	for _, fe := range fes {
		if !strings.HasPrefix(fe.Path, "$") || len(fe.Path) > 1024 || len(fe.Msg) > 4096 || fe.Msg == "" {
			t.Fatalf("problem out of shape (path %d bytes, message %d bytes): %.200s", len(fe.Path), len(fe.Msg), fe.Error())
		}
	}
	if errors.Is(err, ErrTooLarge) && len(b) <= MaxSize {
		t.Fatalf("ErrTooLarge for a %d-byte document", len(b))
	}
	if slices.ContainsFunc(fes, func(fe *FieldError) bool { return fe.Err != nil && !errors.Is(fe.Err, ErrTooLarge) }) {
		t.Fatalf("Parse problem wraps an undocumented cause: %v", err)
	}
}
