package recovery

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/ seed files")

// TestTestdata writes (with -update) and then parses the seed files of the fuzz targets: a
// record, a share file and a submission of one split made here (see testdata/README.md).
func TestTestdata(t *testing.T) {
	if *update {
		f := newFixture(t, 3, 2)
		for name, v := range map[string]any{"record.json": f.rec, "share.json": f.shares[1], "submission.json": f.submit(t, 1), "challenge.json": f.ch} {
			b, _ := json.MarshalIndent(v, "", "  ")
			if err := os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ParseRecord(seed(t, "record.json")); err != nil {
		t.Error(err)
	}
	if _, err := ParseShare(seed(t, "share.json")); err != nil {
		t.Error(err)
	}
	if _, err := ParseSubmission(seed(t, "submission.json")); err != nil {
		t.Error(err)
	}
}

func seed(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fuzzParser checks a parser's properties: no panic, errors match ErrMalformed, an accepted
// input re-encodes to something the parser accepts again.
func fuzzParser[T any](f *testing.F, seedFile string, parse func([]byte) (*T, error)) {
	f.Add(seed(f, seedFile))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parse(again); err != nil {
			t.Fatalf("re-encoded input refused: %v", err)
		}
	})
}

func FuzzParseShare(f *testing.F)      { fuzzParser(f, "share.json", ParseShare) }
func FuzzParseSubmission(f *testing.F) { fuzzParser(f, "submission.json", ParseSubmission) }
func FuzzParseRecord(f *testing.F)     { fuzzParser(f, "record.json", ParseRecord) }
