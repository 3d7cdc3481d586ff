package recovery

import (
	"regexp"
	"strings"
	"testing"
)

// The patterns that hex64, hex32 and nameRE write out.
var (
	hex64Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hex32Pattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func checkMatchers(t *testing.T, s string) {
	t.Helper()
	for _, m := range []struct {
		name string
		got  bool
		re   *regexp.Regexp
	}{{"hex64", hex64.MatchString(s), hex64Pattern}, {"hex32", hex32.MatchString(s), hex32Pattern}, {"nameRE", nameRE.MatchString(s), namePattern}} {
		if want := m.re.MatchString(s); m.got != want {
			t.Errorf("%s.MatchString(%q) = %v, want %v (the pattern's answer)", m.name, s, m.got, want)
		}
	}
}

func TestMatchers(t *testing.T) {
	for _, s := range []string{"", "a", "A", "-", ".a", "a.", "a-b_c.d", "_a", "é", "a b",
		strings.Repeat("0", 32), strings.Repeat("f", 64), strings.Repeat("F", 64), strings.Repeat("g", 32),
		strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("0", 63), "a\n"} {
		checkMatchers(t, s)
	}
}

// FuzzMatchers: the written-out matchers answer as their patterns.
func FuzzMatchers(f *testing.F) {
	for _, s := range []string{"alice", strings.Repeat("0a", 16), strings.Repeat("9f", 32), "-x"} {
		f.Add(s)
	}
	f.Fuzz(checkMatchers)
}
