package deptest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder keeps the failures a check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

// TestChecksCanFail proves each check reports a dependency it does not allow.
func TestChecksCanFail(t *testing.T) {
	const enclave = "github.com/cloister-dev/cloister/enclave"
	const gobuildid = "github.com/cloister-dev/cloister/internal/gobuildid" // its other dependency
	for name, check := range map[string]func(tb testing.TB){
		"Direct":     func(tb testing.TB) { Direct(tb, enclave, gobuildid) },
		"Transitive": func(tb testing.TB) { Transitive(tb, enclave, gobuildid) },
		"Forbidden":  func(tb testing.TB) { Forbidden(tb, enclave, "github.com/cloister-dev/cloister/protect") },
	} {
		r := &recorder{TB: t}
		check(r)
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], "github.com/cloister-dev/cloister/protect") {
			t.Errorf("%s reported %q; want one failure naming protect", name, r.errs)
		}
	}
}
