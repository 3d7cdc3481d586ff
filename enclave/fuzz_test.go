package enclave

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// documented are the errors Parse and ParseKey may wrap.
var documented = []error{ErrTooLarge, ErrMalformed, ErrSignature, ErrInvalid}

func checkDocumented(t *testing.T, err error) {
	t.Helper()
	for _, e := range documented {
		if errors.Is(err, e) {
			return
		}
	}
	t.Fatalf("undocumented error: %v", err)
}

// FuzzParse checks that Parse never panics, returns only documented
// errors, and accepts only manifests the test key signed: whatever the
// fuzzer changes, a successful parse must be of exactly signed bytes, and
// must round-trip through Sign.
func FuzzParse(f *testing.F) {
	key := loadKey(f, "signer.pem")
	signed := map[string]bool{}
	add := func(b []byte) {
		f.Add(b)
		if s, err := Parse(b); err == nil {
			signed[string(s.Raw)] = true
		}
	}
	matches, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(matches) == 0 {
		f.Fatalf("no seeds in testdata/ (%v)", err)
	}
	for _, name := range matches {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	// Seeds from the table cases: signed manifests the decoder must reject.
	full, err := Parse(mustSign(f, fullManifest(), key))
	if err != nil {
		f.Fatal(err)
	}
	raw := string(full.Raw)
	for _, r := range []string{
		strings.Replace(raw, `"isvsvn":2`, `"isvsvn":2,"isvsvn":1`, 1),
		strings.Replace(raw, `"argv":`, `"ARGV":["/evil"],"argv":`, 1),
		strings.Replace(raw, `"env":{`, `"env":{"\u0050ATH":"/evil",`, 1),
		strings.Replace(raw, `"version":2`, `"version":1`, 1),
	} {
		add(signRaw(f, []byte(r), key))
	}
	f.Add([]byte(`{"manifest":{},"signer":{"modulus":"","exponent":3},"signature":""}`))
	var roundTripped sync.Map // of string(Raw) → true

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			checkDocumented(t, err)
			return
		}
		if !signed[string(s.Raw)] || MRSigner(s.Signer) != MRSigner(&key.PublicKey) {
			t.Fatalf("Parse accepted manifest bytes the test key never signed: %q", s.Raw)
		}
		if !strings.Contains(string(data), string(s.Raw)) {
			t.Fatalf("Raw is not part of the input")
		}
		if err := s.Manifest.Validate(); err != nil {
			t.Fatalf("Parse returned an invalid manifest: %v", err)
		}
		// Successes are few distinct manifests; round-trip each once, as
		// RSA signing would otherwise dominate the fuzzing time.
		if _, done := roundTripped.LoadOrStore(string(s.Raw), true); done {
			return
		}
		again, err := Parse(mustSign(t, s.Manifest, key))
		if err != nil || !reflect.DeepEqual(again.Manifest, s.Manifest) {
			t.Fatalf("Parse(Sign(m)) = %v; want m back", err)
		}
	})
}

// FuzzParseKey checks that ParseKey never panics, returns only documented
// errors, and only ever returns RSA-3072, e = 3 keys that round-trip
// through MarshalKey.
func FuzzParseKey(f *testing.F) {
	matches, err := filepath.Glob(filepath.Join("testdata", "*.pem"))
	if err != nil || len(matches) == 0 {
		f.Fatalf("no seeds in testdata/ (%v)", err)
	}
	for _, name := range matches {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKey(data)
		if err != nil {
			checkDocumented(t, err)
			return
		}
		if key.N.BitLen() != KeyBits || key.E != KeyExponent {
			t.Fatalf("ParseKey returned a %d-bit key with e = %d", key.N.BitLen(), key.E)
		}
		if err := key.Validate(); err != nil {
			t.Fatalf("ParseKey returned a key that does not validate: %v", err)
		}
		back, err := ParseKey(MarshalKey(key))
		if err != nil || !back.Equal(key) {
			t.Fatalf("ParseKey(MarshalKey(key)) = %v; want the key back", err)
		}
	})
}
