package launcher

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
)

func TestParseDNSNames(t *testing.T) {
	if maxRequestedDNS != manifest.MaxRequestedDNS || maxRequestedDNSLen != manifest.MaxRequestedDNSLen {
		t.Fatalf("the launcher's bounds %d, %d differ from the Coordinator's %d, %d", maxRequestedDNS, maxRequestedDNSLen, manifest.MaxRequestedDNS, manifest.MaxRequestedDNSLen)
	}
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "web", want: []string{"web"}},
		{in: "web, web.apps.svc.cluster.local", want: []string{"web", "web.apps.svc.cluster.local"}},
		{in: "", err: "name 1: expected a DNS name of 1 to 253 bytes, found 0 bytes"},
		{in: "web,", err: "name 2: expected a DNS name of 1 to 253 bytes"},
		{in: "web,web", err: `name 2: expected each DNS name once, found "web" again`},
		{in: "*.apps.svc", err: "without wildcard"},
		{in: "Web", err: "expected a lowercase DNS name"},
		{in: "10.0.0.1", err: "which reads as an IP address"},
		{in: "0b0", err: "which reads as an IP address"},
		{in: "0x0a.b", want: []string{"0x0a.b"}},
		{in: "a..b", err: "expected a lowercase DNS name"},
		{in: strings.Repeat("a,", manifest.MaxRequestedDNS) + "a", err: "expected at most 32 comma-separated DNS names, found 33"},
		{in: strings.Repeat("a", maxDNSNamesEnv+1), err: "expected at most"},
	} {
		got, err := parseDNSNames(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseDNSNames(%.40q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseDNSNames(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{EnvCoordinator: "c:1", EnvWorkload: "w", EnvInstance: "i", EnvDNSNames: "a.b,c"}[k]
	}, nil, &strings.Builder{})
	if err != nil || !slices.Equal(cfg.DNSNames, []string{"a.b", "c"}) {
		t.Errorf("ConfigFromEnv: DNSNames %q, %v", cfg.DNSNames, err)
	}
	_, err = ConfigFromEnv(func(k string) string {
		return map[string]string{EnvCoordinator: "c:1", EnvWorkload: "w", EnvInstance: "i", EnvDNSNames: "a,,b"}[k]
	}, nil, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "CLOISTER_DNS_NAMES: name 2") {
		t.Errorf("ConfigFromEnv with a bad CLOISTER_DNS_NAMES: %v", err)
	}
}

// FuzzParseDNSNames: whatever the host sets, parseDNSNames returns names every one of which
// the Coordinator's own form check accepts, within the bounds, or an error.
func FuzzParseDNSNames(f *testing.F) {
	for _, s := range []string{"web", "web, web.apps.svc", "*.a.b", "10.0.0.1", "a,,b", "0x0a.b.c", "a-b.c-d", "0b0", "0x1.0x2"} {
		f.Add(s)
	}
	m := &manifest.Manifest{Workloads: map[string]manifest.Workload{"w": {TLS: manifest.TLS{AllowedDNS: nil}}}}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := parseDNSNames(s)
		if err != nil {
			return
		}
		if len(names) == 0 || len(names) > manifest.MaxRequestedDNS {
			t.Fatalf("%d names", len(names))
		}
		for _, n := range names {
			// Not allowed (the workload allows nothing), but never for its form.
			if err := m.CheckRequestedDNS("w", n); err == nil || !strings.Contains(err.Error(), "is not among") {
				t.Fatalf("parseDNSNames accepted %q, which the Coordinator refuses for its form: %v", n, err)
			}
		}
	})
}

func TestStateSeenCheck(t *testing.T) {
	at := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	resp := func(v uint64, h string) *api.ActivationResponse {
		return &api.ActivationResponse{StateVersion: v, StateHash: h}
	}
	s := seenFrom(resp(5, "aa"), at)
	for _, tc := range []struct {
		v    uint64
		h    string
		want string
	}{
		{6, "bb", ""},
		{5, "aa", ""},
		{4, "cc", "coordinator state went backwards: state version 5 seen on 2026-12-04T06:00:00Z, now 4"},
		{0, "", "coordinator state went backwards: state version 5 seen on 2026-12-04T06:00:00Z, now 0"},
		{5, "bb", "coordinator state forked: state version 5 seen on 2026-12-04T06:00:00Z with hash aa, now the same version with hash bb"},
	} {
		next, err := s.check(resp(tc.v, tc.h), at.Add(time.Minute))
		switch {
		case tc.want == "" && (err != nil || next.version != tc.v):
			t.Errorf("version %d %s: %v, next %d; want accepted", tc.v, tc.h, err, next.version)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want) || next != s):
			t.Errorf("version %d %s: %v; want %q and the seen state kept", tc.v, tc.h, err, tc.want)
		}
	}
	// A launch that saw no version (a Coordinator from before versions) accepts anything.
	if _, err := (stateSeen{}).check(resp(1, "aa"), at); err != nil {
		t.Errorf("nothing seen: %v", err)
	}
}

// dnsLabelRE is the pattern isDNSLabel writes out.
var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func TestIsDNSLabel(t *testing.T) {
	for _, l := range []string{"", "a", "-", "a-", "-a", "a-b", "0", "web", "Web", "a_b", "a.b", "é",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a" + strings.Repeat("-", 61) + "b", "a" + strings.Repeat("-", 62) + "b"} {
		if got, want := isDNSLabel(l), dnsLabelRE.MatchString(l); got != want {
			t.Errorf("isDNSLabel(%q) = %v, want %v (the pattern's answer)", l, got, want)
		}
	}
}

// FuzzIsDNSLabel: isDNSLabel answers as the pattern it writes out.
func FuzzIsDNSLabel(f *testing.F) {
	for _, s := range []string{"a", "a-b", "-a", strings.Repeat("z", 64), "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, l string) {
		if got, want := isDNSLabel(l), dnsLabelRE.MatchString(l); got != want {
			t.Errorf("isDNSLabel(%q) = %v, want %v (the pattern's answer)", l, got, want)
		}
	})
}
