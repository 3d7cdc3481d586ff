package manifest

import (
	"bytes"
	"strings"
	"testing"
)

// apiBody has the shapes of the Coordinator's API bodies: strings, byte slices (base64) and a
// map of byte slices.
type apiBody struct {
	Name    string            `json:"name"`
	Quote   []byte            `json:"quote"`
	Secrets map[string][]byte `json:"secrets"`
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, in string
		want     apiBody
		wantErr  string
	}{
		{name: "ok", in: `{"name":"web","quote":"AQID","secrets":{"a":"/w=="}}`,
			want: apiBody{Name: "web", Quote: []byte{1, 2, 3}, Secrets: map[string][]byte{"a": {0xff}}}},
		{name: "duplicate top-level key", in: `{"name":"web","name":"db"}`, wantErr: `$.name: expected each key once, found "name" again`},
		{name: "duplicate map key", in: `{"secrets":{"a":"AA==","a":"AQ=="}}`, wantErr: `$.secrets.a: expected each key once, found "a" again`},
		{name: "unknown key", in: `{"nam":"web"}`, wantErr: `$.nam: unknown key "nam"; expected one of: name, quote, secrets`},
		{name: "trailing data", in: `{"name":"web"} {}`, wantErr: `$: expected nothing after the JSON value, found more data`},
		{name: "bad base64", in: `{"quote":"!!"}`, wantErr: `$.quote: expected standard base64`},
		{name: "array for bytes", in: `{"quote":[1,2]}`, wantErr: `$.quote: expected a base64 string, found an array`},
		{name: "null", in: `{"name":null}`, wantErr: `$.name: expected a string, found null`},
		{name: "empty", in: ``, wantErr: `$: expected more JSON, found the end of the document`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got apiBody
			err := DecodeStrict([]byte(tc.in), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeStrict(%s) = %v, want error containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || !bytes.Equal(got.Quote, tc.want.Quote) || len(got.Secrets) != len(tc.want.Secrets) ||
				!bytes.Equal(got.Secrets["a"], tc.want.Secrets["a"]) {
				t.Errorf("DecodeStrict(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{"name":"web","quote":"AQID","secrets":{"a":"/w=="}}`, `{"name":"a","name":"b"}`, `{"quote":"!!"}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v apiBody
		err := DecodeStrict(b, &v)
		if err != nil && !strings.HasPrefix(err.Error(), "$") {
			t.Fatalf("error without a JSON path: %v", err)
		}
	})
}

func TestDecodeStrictBounds(t *testing.T) {
	deep := `{"x":` + strings.Repeat("[", 1<<20) + `}`
	var v apiBody
	err := DecodeStrict([]byte(deep), &v)
	if err == nil || !strings.Contains(err.Error(), "expected at most 64 levels of nested objects and arrays") {
		t.Errorf("deeply nested unknown value: %v", err)
	}
	allocs := testing.AllocsPerRun(3, func() { _ = DecodeStrict([]byte(deep), &v) })
	if allocs > 1000 {
		t.Errorf("refusing a deep value made %v allocations", allocs)
	}
	for _, in := range []string{`{"quote":"AQ\nID"}`, `{"quote":"AR=="}`, `{"quote":"AQI"}`} {
		if err := DecodeStrict([]byte(in), &v); err == nil || !strings.Contains(err.Error(), "expected standard base64 with padding") {
			t.Errorf("DecodeStrict(%s) = %v; want a base64 error", in, err)
		}
	}
}
