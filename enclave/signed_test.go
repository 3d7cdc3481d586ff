package enclave

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// signRaw builds a signed file around raw, signed by key, with its
// envelope fields in the given JSON (for the tests that need odd envelopes).
func signRaw(t testing.TB, raw []byte, key *rsa.PrivateKey) []byte {
	t.Helper()
	d := sha256.Sum256(raw)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{"manifest":` + string(raw) + `,"signer":{"modulus":"` +
		hex.EncodeToString(key.N.FillBytes(make([]byte, 384))) + `","exponent":3},"signature":"` +
		hex.EncodeToString(sig) + `"}`)
}

func TestSignParse(t *testing.T) {
	key := loadKey(t, "signer.pem")
	for name, m := range map[string]*Manifest{"minimal": minimalManifest(), "full": fullManifest()} {
		t.Run(name, func(t *testing.T) {
			before := slices.Clone(m.Files)
			b := mustSign(t, m, key)
			if !slices.Equal(m.Files, before) {
				t.Errorf("Sign reordered its input's files")
			}
			if again := mustSign(t, m, key); !bytes.Equal(again, b) {
				t.Errorf("Sign is not deterministic")
			}
			s, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Sign(m)): %v", err)
			}
			want := *m
			want.Files = slices.SortedFunc(slices.Values(m.Files), func(a, b File) int { return strings.Compare(a.Path, b.Path) })
			if want.Files == nil {
				want.Files = []File{}
			}
			if !reflect.DeepEqual(s.Manifest, &want) {
				t.Errorf("Parse(Sign(m)).Manifest = %+v, want %+v", s.Manifest, &want)
			}
			canonical, err := json.Marshal(&want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Raw, canonical) || !bytes.Contains(b, s.Raw) {
				t.Errorf("Raw is not the canonical encoding found in the file")
			}
			if s.Digest() != sha256.Sum256(s.Raw) || s.MRSigner() != MRSigner(&key.PublicKey) {
				t.Errorf("Digest or MRSigner do not match Raw and the key")
			}
			if !s.Signer.Equal(&key.PublicKey) || len(s.Signature) != 384 {
				t.Errorf("Signer or Signature not those of the key")
			}
		})
	}
}

// TestParseExactBytes checks that the signature covers the bytes as found,
// whatever their formatting, and never a re-encoding.
func TestParseExactBytes(t *testing.T) {
	key := loadKey(t, "signer.pem")
	s, err := Parse(mustSign(t, fullManifest(), key))
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, s.Raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(signRaw(t, indented.Bytes(), key))
	if err != nil {
		t.Fatalf("Parse of an indented, signed manifest: %v", err)
	}
	if !bytes.Equal(got.Raw, indented.Bytes()) || !reflect.DeepEqual(got.Manifest, s.Manifest) {
		t.Errorf("indented manifest: Raw or Manifest differ from what was signed")
	}
	// The same manifest re-indented but not re-signed must fail.
	forged := bytes.Replace(mustSign(t, fullManifest(), key), s.Raw, indented.Bytes(), 1)
	if _, err := Parse(forged); !errors.Is(err, ErrSignature) {
		t.Errorf("Parse of a re-encoded manifest = %v, want ErrSignature", err)
	}
}

func TestParseRejects(t *testing.T) {
	key, other := loadKey(t, "signer.pem"), loadKey(t, "other.pem")
	valid := mustSign(t, fullManifest(), key)
	s, err := Parse(valid)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(s.Raw)
	signed := func(raw string) []byte { return signRaw(t, []byte(raw), key) }
	replace := func(b []byte, old, new string) []byte {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("test setup: %q not found", old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	sigHex := hex.EncodeToString(s.Signature)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", make([]byte, MaxSize+1), ErrTooLarge},
		{"empty", nil, ErrMalformed},
		{"not json", []byte("manifest"), ErrMalformed},
		{"array", []byte("[]"), ErrMalformed},
		{"null", []byte("null"), ErrMalformed},
		{"trailing data", append(slices.Clone(valid), "{}"...), ErrMalformed},
		{"unknown envelope field", replace(valid, `{"manifest":`, `{"comment":"x","manifest":`), ErrMalformed},
		{"duplicate envelope key", replace(valid, `{"manifest":`, `{"manifest":{},"manifest":`), ErrMalformed},
		{"uppercase envelope key", replace(valid, `"signature":`, `"SIGNATURE":`), ErrMalformed},
		{"short modulus", replace(valid, `"modulus":"`, `"modulus":"00`), ErrMalformed},
		{"uppercase modulus", replace(valid, `"modulus":"`+hex.EncodeToString(key.N.Bytes()[:1]),
			`"modulus":"`+strings.ToUpper(hex.EncodeToString(key.N.Bytes()[:1]))), ErrMalformed},
		{"exponent 65537", replace(valid, `"exponent":3`, `"exponent":65537`), ErrInvalid},
		{"even modulus", replace(valid, hex.EncodeToString(key.N.Bytes()), strings.Repeat("f", 767)+"e"), ErrInvalid},
		{"short signature", replace(valid, sigHex, sigHex[2:]), ErrMalformed},
		{"modified manifest", replace(valid, `"isvsvn":2`, `"isvsvn":3`), ErrSignature},
		{"signature by other key", replace(signRaw(t, s.Raw, other),
			hex.EncodeToString(other.N.FillBytes(make([]byte, 384))), hex.EncodeToString(key.N.FillBytes(make([]byte, 384)))), ErrSignature},
		{"signed unknown field", signed(strings.Replace(raw, `"version":2`, `"version":2,"debug":true`, 1)), ErrMalformed},
		{"signed duplicate key", signed(strings.Replace(raw, `"isvsvn":2`, `"isvsvn":2,"isvsvn":1`, 1)), ErrMalformed},
		{"signed case-folded key", signed(strings.Replace(raw, `"argv":`, `"ARGV":["/evil"],"argv":`, 1)), ErrMalformed},
		{"signed kelvin-sign key", signed(strings.Replace(raw, `"key":"app-key"`, "\"\u212aey\":\"app-key\"", 1)), ErrMalformed},
		{"signed escaped key", signed(strings.Replace(raw, `"user":`, `"\u0075ser":`, 1)), ErrMalformed},
		{"signed duplicate env", signed(strings.Replace(raw, `"env":{`, `"env":{"\u0050ATH":"/evil",`, 1)), ErrMalformed},
		{"signed bad digest", signed(strings.Replace(raw, `"sha256":"0c`, `"sha256":"0C`, 1)), ErrMalformed},
		{"signed short digest", signed(strings.Replace(raw, `"sha256":"0c`, `"sha256":"`, 1)), ErrMalformed},
		{"signed trailing data", signed(raw + " 1"), ErrMalformed},
		{"signed array", signed(`[1]`), ErrMalformed},
		{"signed invalid manifest", signed(strings.Replace(raw, `"version":2`, `"version":3`, 1)), ErrInvalid},
		{"signed unsorted files", signed(strings.Replace(raw, `"path":"/etc/app.conf"`, `"path":"/zzz"`, 1)), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if got != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v (and no result)", err, tc.want)
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	key := loadKey(t, "signer.pem")
	weak := loadKey(t, "signer.pem")
	weak.E = 65537
	bad := fullManifest()
	bad.Files = append(bad.Files, bad.Files[0])
	tests := []struct {
		name string
		m    *Manifest
		key  *rsa.PrivateKey
		want string
	}{
		{"exponent 65537", minimalManifest(), weak, "found a 3072-bit odd modulus with exponent 65537"},
		{"duplicate file", bad, key, "expected sorted unique paths"},
		{"no argv", &Manifest{Version: FormatVersion}, key, "argv: expected at least one element"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(tc.m, tc.key)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Sign = %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

func TestCheckKeys(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"flat", `{"a":1,"b_2":[{"a":1},{"a":2}]}`, true},
		{"nested duplicates allowed across objects", `{"a":{"a":{"a":1}},"b":{"a":2}}`, true},
		{"strings that look like keys", `{"a":["b","b",{"c":"\"c\":"}]}`, true},
		{"map keys any case", `{"manifest":{"env":{"A":"1","a":"2","\u00e9":"3"}}}`, true},
		{"duplicate", `{"a":1,"b":2,"a":3}`, false},
		{"nested duplicate", `{"x":[{"a":1,"a":1}]}`, false},
		{"uppercase", `{"A":1}`, false},
		{"escaped", `{"\u0061":1}`, false},
		{"empty key", `{"":1}`, false},
		{"map duplicate", `{"manifest":{"env":{"A":"1","A":"2"}}}`, false},
		{"map duplicate escaped", `{"manifest":{"env":{"A":"1","\u0041":"2"}}}`, false},
		{"map only at its path", `{"env":{"A":"1"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkKeys([]byte(tc.in), "manifest", "env"); (err == nil) != tc.ok {
				t.Errorf("checkKeys(%s) = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}
