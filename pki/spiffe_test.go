package pki

import (
	"net/url"
	"strings"
	"testing"
)

var spiffeCases = []struct {
	td, name string
	want     string
	wantErr  string
}{
	{"cloister.internal", "web", "spiffe://cloister.internal/web", ""},
	{"example.org", "workload/Web-1_a.b", "spiffe://example.org/workload/Web-1_a.b", ""},
	{"a_b-c.d", "x", "spiffe://a_b-c.d/x", ""},
	{"", "web", "", "trust domain is 0 bytes"},
	{strings.Repeat("a", 256), "web", "", "trust domain is 256 bytes"},
	{"Example.org", "web", "", "has 'E' at byte 0"},
	{"example.org:443", "web", "", "has ':' at byte 11"},
	{"user@example.org", "web", "", "has '@' at byte 4"},
	{"example.org", "", "", "name is empty"},
	{"example.org", "/web", "", "segment 1: empty segment"},
	{"example.org", "web/", "", "segment 2: empty segment"},
	{"example.org", "a//b", "", "segment 2: empty segment"},
	{"example.org", "a/./b", "", `segment "." is not allowed`},
	{"example.org", "..", "", `segment ".." is not allowed`},
	{"example.org", "a b", "", "' ' at byte 1"},
	{"example.org", "a%2Fb", "", "'%' at byte 1"},
	{"example.org", "wé", "", "at byte 1"},
	{"example.org", "a?b", "", "'?' at byte 1"},
	{"example.org", strings.Repeat("a", 2048), "", "at most 2048 allowed"},
}

func TestSPIFFEID(t *testing.T) {
	for _, tc := range spiffeCases {
		t.Run(tc.td+"/"+tc.name, func(t *testing.T) {
			got, err := SPIFFEID(tc.td, tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SPIFFEID(%q, %q) error = %v, want it to contain %q", tc.td, tc.name, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SPIFFEID(%q, %q): %v", tc.td, tc.name, err)
			}
			if got.String() != tc.want {
				t.Fatalf("SPIFFEID(%q, %q) = %s, want %s", tc.td, tc.name, got, tc.want)
			}
		})
	}
}

// FuzzSPIFFEID: no panic; an accepted ID prints and re-parses to the same
// trust domain and path, using only the characters the spec allows.
func FuzzSPIFFEID(f *testing.F) {
	for _, tc := range spiffeCases {
		f.Add(tc.td, tc.name)
	}
	f.Fuzz(func(t *testing.T, td, name string) {
		id, err := SPIFFEID(td, name)
		if err != nil {
			return
		}
		s := id.String()
		if s != "spiffe://"+td+"/"+name || len(s) > maxSPIFFEIDLength {
			t.Fatalf("SPIFFEID(%q, %q) = %q", td, name, s)
		}
		back, err := url.Parse(s)
		if err != nil || back.Host != td || back.Path != "/"+name || back.RawQuery != "" || back.Fragment != "" || back.User != nil {
			t.Fatalf("%q re-parses as %#v, %v", s, back, err)
		}
	})
}
