package audit

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseEntry: any input either is refused or is an entry whose encoding is the input.
func FuzzParseEntry(f *testing.F) {
	entries, _ := session(f, 3)
	for _, e := range entries {
		f.Add(e)
	}
	f.Add([]byte(`{"seq":1,"time":"2026-12-03T10:00:00Z","kind":"k","actor":"a","prev":"` + Hash{}.String() + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parsed entry re-encodes as %q, %v; input %q", again, err, b)
		}
	})
}

// FuzzVerify: no input panics, and an accepted export's head verifies and names its last entry.
func FuzzVerify(f *testing.F) {
	key := ecKey(f)
	root := testRoot(f, key)
	entries, c := session(f, 4)
	head, err := c.Head(t0.Add(time.Hour), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(export(f, entries, 1, head))
	f.Add(export(f, entries, 3, head))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Verify(bytes.NewReader(b), VerifyOptions{Root: root, MaxEntries: 1000})
		if err != nil {
			return
		}
		if rep.Head.Seq != rep.Last || rep.Head.Verify(root) != nil {
			t.Fatalf("accepted export with head %+v, last entry %d", rep.Head, rep.Last)
		}
	})
}
