package launcher

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
)

// TestMeasureSelf runs measureSelf on the test binary against records of it: the exact record
// is taken without hashing; a record of another size or build ID is refused at once; a record
// without a build ID is hashed and compared, and refused after the hash if the hash differs;
// with no record the binary is hashed.
func TestMeasureSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := image.DescribeLauncher(exe)
	if err != nil || rec.GoBuildID == "" {
		t.Fatalf("DescribeLauncher(%s) = %+v, %v; want a Go build ID", exe, rec, err)
	}
	with := func(change func(l *enclave.Launcher)) *enclave.Launcher {
		l := *rec
		change(&l)
		return &l
	}
	for _, tc := range []struct {
		name    string
		rec     *enclave.Launcher
		how     string
		refused string // at once
		failed  string // after the hash
	}{
		{"recorded", rec, "recorded", "", ""},
		{"no record", nil, "computed", "", ""},
		{"record without build ID", with(func(l *enclave.Launcher) { l.GoBuildID = "" }), "computed", "", ""},
		{"another size", with(func(l *enclave.Launcher) { l.Size++ }), "", "not the one the enclave manifest was made for", ""},
		{"another build ID", with(func(l *enclave.Launcher) { l.GoBuildID = "x/y" }), "", fmt.Sprintf("expected %d bytes with Go build ID \"x/y\"", rec.Size), ""},
		{"another hash", with(func(l *enclave.Launcher) { l.GoBuildID, l.SHA256[0] = "", l.SHA256[0]^1 }), "computed", "", "found SHA-256 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := measureSelf(tc.rec)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("measureSelf = %v; want it refused at once, saying %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			<-h.done
			if h.how != tc.how {
				t.Errorf("how = %q, want %q (why: %s)", h.how, tc.how, h.why)
			}
			if tc.failed != "" {
				if h.err == nil || !strings.Contains(h.err.Error(), tc.failed) {
					t.Errorf("err = %v; want it saying %q", h.err, tc.failed)
				}
				return
			}
			if h.err != nil || h.sum != rec.SHA256 {
				t.Errorf("sum %x, err %v; want the binary's hash %x", h.sum, h.err, rec.SHA256)
			}
		})
	}
}
