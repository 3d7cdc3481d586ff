package cli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/image"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/google/go-cmp/cmp"
)

// fill sets everything reachable from v to values that are not zero (two elements in every
// slice and map), counting in n, so that a conversion that drops or mistypes a field shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n%100 + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n%100 + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	default:
		panic("fill: no case for " + v.Kind().String())
	}
}

func filled[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n)
	return v
}

// sameJSON fails t unless a and b marshal to the same JSON value.
func sameJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	decode := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if diff := cmp.Diff(decode(a), decode(b)); diff != "" {
		t.Errorf("%s: the jsonoutput document differs from the JSON of what it converts (-source +jsonoutput):\n%s", what, diff)
	}
}

// TestJSONOutputConversions checks that each jsonoutput document made from an SDK or converter
// result has every field of it, with the same keys and values: the CLI's JSON output was these
// results' own JSON before package jsonoutput existed, and must stay that. A field added to a
// result fails this test until it is added to jsonoutput (and so to docs/cli/json.md), or
// left out on purpose here.
func TestJSONOutputConversions(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pair returns a source value and the jsonoutput document made from it.
		pair func() (src, doc any)
	}{
		{"status", func() (any, any) { s := filled[api.Status](); return s, statusJSON(&s) }},
		{"manifest set", func() (any, any) { r := filled[api.SetManifestResponse](); return r, manifestSetJSON(&r) }},
		{"secret get", func() (any, any) { s := filled[map[string]api.Secret](); return s, secretsJSON(s) }},
		{"secret get (certificate)", func() (any, any) {
			s := map[string]api.Secret{"tls": {Certificate: "cert", PrivateKey: "key"}}
			return s, secretsJSON(s)
		}},
		{"manifest diff", func() (any, any) { c := filled[[]manifest.Change](); return c, diffJSON(c) }},
		{"image report", func() (any, any) { r := filled[image.Report](); return r, imageReportJSON(&r) }},
		{"image report (zero)", func() (any, any) { var r image.Report; return r, imageReportJSON(&r) }},
		{"image report (no protected files)", func() (any, any) {
			r := filled[image.Report]()
			r.ProtectedFiles, r.Exclude, r.Coordinator.MRENCLAVE = nil, nil, nil
			r.Coordinator.MRSIGNER = [32]byte{}
			return r, imageReportJSON(&r)
		}},
		{"manifest entry", func() (any, any) { s := filled[image.Snippet](); return s, manifestEntryJSON(s) }},
		{"manifest entry (no secrets)", func() (any, any) {
			s := filled[image.Snippet]()
			s.Secrets = nil
			for k, w := range s.Workloads {
				w.FileKeys = nil
				s.Workloads[k] = w
			}
			return s, manifestEntryJSON(s)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, doc := tc.pair()
			sameJSON(t, tc.name, src, doc)
		})
	}
	// The one intended difference: no change is an empty array, not null.
	if b, _ := json.Marshal(diffJSON(nil)); string(b) != "[]" {
		t.Errorf("diff without changes = %s, want []", b)
	}
}
