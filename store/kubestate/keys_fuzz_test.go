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
		c, err := parseKeys(map[string][]byte{n1: v1, n2: v2})
		if err != nil {
			return
		}
		for id, v := range c.Sealed {
			if !keyIDPattern.MatchString(id) || len(v) > maxSealedKey {
				t.Fatalf("accepted copy %q of %d bytes", id, len(v))
			}
		}
	})
}
