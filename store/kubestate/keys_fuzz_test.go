package kubestate

import (
	"bytes"
	"testing"
)

// FuzzParseKeys: any entry names and values give copies within the bounds or an error.
func FuzzParseKeys(f *testing.F) {
	f.Add("key.0123456789abcdef0123456789abcdef", bytes.Repeat([]byte{1}, 61), "recovery", []byte(`{}`))
	f.Add("key.XYZ", []byte{1}, "other", []byte{})
	f.Fuzz(func(t *testing.T, n1 string, v1 []byte, n2 string, v2 []byte) {
		c, _, err := parseKeys(map[string][]byte{n1: v1, n2: v2})
		if err != nil {
			return
		}
		if (n1 == "recovery" || n2 == "recovery") && n1 != n2 && c.Recovery == nil {
			t.Fatalf("a recovery record was dropped")
		}
		for id, v := range c.Sealed {
			if !keyIDPattern.MatchString(id) || len(v) > maxSealedKey {
				t.Fatalf("accepted copy %q of %d bytes", id, len(v))
			}
		}
	})
}

// TestParseKeysSkipsUnknown: an unknown entry is skipped and named, the copies beside it kept;
// a copy of the wrong size still refuses the shelf.
func TestParseKeysSkipsUnknown(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	c, skipped, err := parseKeys(map[string][]byte{"key." + id: bytes.Repeat([]byte{1}, 61), "future-entry": {1}, "key.NOTHEX": {2}})
	if err != nil {
		t.Fatalf("parseKeys with an unknown entry: %v, want the copy kept", err)
	}
	if len(c.Sealed) != 1 || c.Sealed[id] == nil || len(skipped) != 2 {
		t.Fatalf("parseKeys = %d copies, skipped %v; want 1 copy and 2 skipped", len(c.Sealed), skipped)
	}
	if _, _, err := parseKeys(map[string][]byte{"key." + id: {1}}); err == nil {
		t.Fatal("a copy of 1 byte was accepted")
	}
}
