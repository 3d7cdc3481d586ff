package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseKeyFile: no panic; an accepted file has version 1, a kind and
// a sealed key, and survives a marshal/parse round trip.
func FuzzParseKeyFile(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"kind":"simulation","sealed":"AQIDBA=="}`,
		`{"version":1,"kind":"simulation","sealed":"AQ==","extra":1}`,
		`{"version":1,"kind":"simulation","sealed":"AQ=="}{}`,
		`{"version":2,"kind":"simulation","sealed":"AQ=="}`,
		`{"version":1,"kind":"","sealed":"AQ=="}`,
		`{"version":1,"kind":"x","sealed":"not base64"}`,
		`null`, ``, `[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		kf, err := parseKeyFile(raw)
		if err != nil {
			return
		}
		if kf.Version != keyFileVersion || kf.Kind == "" || len(kf.Sealed) == 0 {
			t.Fatalf("accepted %+v", kf)
		}
		again, err := json.Marshal(kf)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseKeyFile(again)
		if err != nil || back.Kind != kf.Kind || !bytes.Equal(back.Sealed, kf.Sealed) {
			t.Fatalf("round trip of %+v: %+v, %v", kf, back, err)
		}
	})
}

// FuzzOpenValue feeds arbitrary stored bytes to the value decryption: it
// must fail with ErrCorrupt or return exactly what was sealed for that
// bucket and key.
func FuzzOpenValue(f *testing.F) {
	aead, err := newAEAD(bytes.Repeat([]byte{7}, dataKeySize))
	if err != nil {
		f.Fatal(err)
	}
	db := &DB{aead: aead}
	for _, v := range []string{"", "value", string(make([]byte, 300))} {
		sealed := db.seal("bucket", "key", []byte(v))
		f.Add("bucket", "key", sealed)
		f.Add("bucket", "kez", sealed)
		f.Add("bucket", "key", sealed[:len(sealed)-1])
	}
	f.Add("b", "k", []byte{})
	f.Fuzz(func(t *testing.T, bucket, key string, sealed []byte) {
		value, err := db.open(bucket, key, sealed)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || value != nil {
				t.Fatalf("open error %v (value %v), want ErrCorrupt and no value", err, value != nil)
			}
			return
		}
		if len(sealed) != len(value)+valueOverhead {
			t.Fatalf("accepted %d stored bytes for a %d-byte value", len(sealed), len(value))
		}
		back, err := db.open(bucket, key, db.seal(bucket, key, value))
		if err != nil || !bytes.Equal(back, value) {
			t.Fatalf("re-sealed value does not round trip: %v", err)
		}
	})
}
