// Package deptest checks, in tests, what a package depends on, so that the direction of imports
// in docs/architecture.md holds and small components stay small (cloister-launch runs in every
// confidential container). It asks the go command, which every test run has.
package deptest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Direct fails tb for every package that pkg's non-test files import, outside the standard
// library, that allowed does not admit. An allowed entry is an import path, or a prefix that
// ends in "/".
func Direct(tb testing.TB, pkg string, allowed ...string) {
	tb.Helper()
	for _, dep := range list(tb, pkg, `{{range .Imports}}{{.}}{{"\n"}}{{end}}`) {
		if !standard(tb, dep) && !match(dep, allowed) {
			tb.Errorf("%s imports %s; allowed outside the standard library: %v", pkg, dep, allowed)
		}
	}
}

// Transitive fails tb for every package that pkg depends on, directly or not, as built with
// CGO_ENABLED=0, outside the standard library, that allowed does not admit.
func Transitive(tb testing.TB, pkg string, allowed ...string) {
	tb.Helper()
	for _, line := range list(tb, pkg, `{{if not .Standard}}{{.ImportPath}}{{end}}`, "-deps") {
		if line != pkg && !match(line, allowed) {
			tb.Errorf("%s depends on %s; allowed outside the standard library: %v", pkg, line, allowed)
		}
	}
}

// Forbidden fails tb for every package that pkg depends on, directly or not, as built with
// CGO_ENABLED=0, that forbidden names (as in Direct's allowed).
func Forbidden(tb testing.TB, pkg string, forbidden ...string) {
	tb.Helper()
	for _, line := range list(tb, pkg, `{{.ImportPath}}`, "-deps") {
		if match(line, forbidden) {
			tb.Errorf("%s depends on %s, which it must not", pkg, line)
		}
	}
}

func match(path string, patterns []string) bool {
	for _, p := range patterns {
		if path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// standard reports whether an import path is in the standard library: its first element has no dot.
func standard(tb testing.TB, path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func list(tb testing.TB, pkg, format string, flags ...string) []string {
	tb.Helper()
	args := append([]string{"list", "-f", format}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("go list %s: %v", pkg, err)
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
