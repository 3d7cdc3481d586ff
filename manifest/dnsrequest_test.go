package manifest

import (
	"errors"
	"strings"
	"testing"
)

// TestAllowedDNSValidation: tls.allowed_dns entries are DNS names or one-label wildcards under
// at least two labels, and none may stand for another workload's identity or be covered by a
// certificate secret's name.
func TestAllowedDNSValidation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(obj)
		path, want string
	}{
		{"ok", func(d obj) {}, "", ""},
		{"not a name", func(d obj) { at(d, "workloads", "server", "tls")["allowed_dns"] = arr{"a..b"} }, "$.workloads.server.tls.allowed_dns[0]", "expected a lowercase DNS name"},
		{"wildcard too wide", func(d obj) { at(d, "workloads", "server", "tls")["allowed_dns"] = arr{"*.svc"} }, "$.workloads.server.tls.allowed_dns[0]", "expected a wildcard under a name of at least two labels"},
		{"numeric", func(d obj) { at(d, "workloads", "server", "tls")["allowed_dns"] = arr{"*.0.0.10"} }, "$.workloads.server.tls.allowed_dns[0]", "whose last label is not all digits"},
		{"twice", func(d obj) { at(d, "workloads", "server", "tls")["allowed_dns"] = arr{"*.a.svc", "*.a.svc"} }, "$.workloads.server.tls.allowed_dns[1]", "found \"*.a.svc\" again"},
		{"covers another workload's name", func(d obj) {
			at(d, "workloads")["worker"] = obj{"package": "web", "tls": obj{"dns": arr{"worker.apps.svc"}}}
		}, "$.workloads.server.tls.allowed_dns[0]", `"*.apps.svc" covers the DNS name "worker.apps.svc" of workload "worker"; a requested name must not stand for another workload's identity`},
		{"overlaps another workload's pattern", func(d obj) {
			at(d, "workloads")["worker"] = obj{"package": "web", "tls": obj{"allowed_dns": arr{"*.apps.svc"}}}
		}, "$.workloads.server.tls.allowed_dns[0]", `"*.apps.svc" overlaps the allowed DNS name "*.apps.svc" of workload "worker"`},
		{"a certificate secret's name under it", func(d obj) {
			at(d, "secrets", "tls")["dns"] = arr{"admin.apps.svc"}
		}, "$.secrets.tls.dns[0]", `"admin.apps.svc" is covered by the allowed DNS name "*.apps.svc" of workload "server"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := baseDoc(t)
			at(d, "workloads", "server", "tls")["allowed_dns"] = arr{"*.apps.svc"}
			tc.edit(d)
			m, err := Parse(marshal(t, d))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := m.CheckRequestedDNS("server", "x.apps.svc"); err != nil {
					t.Errorf("CheckRequestedDNS: %v", err)
				}
				return
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.Path == tc.path && strings.Contains(fe.Error(), tc.want) {
					return
				}
			}
			t.Errorf("Parse: %v\nwant at %s: %s", err, tc.path, tc.want)
		})
	}
}

func TestCheckRequestedDNS(t *testing.T) {
	m := &Manifest{Workloads: map[string]Workload{
		"web": {TLS: TLS{DNS: []string{"web", "*.web.example"}, AllowedDNS: []string{"*.apps.svc", "web.apps"}}},
		"db":  {TLS: TLS{DNS: []string{"db.apps.svc"}, IP: []string{"10.0.0.5"}}},
	}}
	for name, want := range map[string]string{
		"web":                    "",
		"a.web.example":          "",
		"x.apps.svc":             "",
		"web.apps":               "",
		"db.apps.svc":            `matches the DNS name "db.apps.svc" of workload "db"`,
		"a.b.apps.svc":           "is not among",
		"apps.svc":               "is not among",
		"*.apps.svc":             "without wildcard",
		"X.apps.svc":             "expected a lowercase DNS name",
		"10.0.0.5":               "read as an IP address",
		"0x0a000005":             "read as an IP address",
		"":                       "1 to 253 bytes",
		strings.Repeat("a", 300): "1 to 253 bytes",
	} {
		err := m.CheckRequestedDNS("web", name)
		if want == "" {
			if err != nil {
				t.Errorf("CheckRequestedDNS(%q): %v", name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrDNSNotAllowed) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRequestedDNS(%q) = %v; want ErrDNSNotAllowed containing %q", name, err, want)
		}
	}
	if err := m.CheckRequestedDNS("nosuch", "x.apps.svc"); err == nil || !strings.Contains(err.Error(), `unknown workload "nosuch"`) {
		t.Errorf("unknown workload: %v", err)
	}
}

// BenchmarkCheckRequestedDNS: the cost the Coordinator pays per requested name, with 100
// other workloads to check against.
func BenchmarkCheckRequestedDNS(b *testing.B) {
	m := &Manifest{Workloads: map[string]Workload{"web": {TLS: TLS{AllowedDNS: []string{"*.apps.svc.cluster.local"}}}}}
	for i := range 100 {
		n := "w" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		m.Workloads[n] = Workload{TLS: TLS{DNS: []string{n + ".other.svc"}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.CheckRequestedDNS("web", "web.apps.svc.cluster.local"); err != nil {
			b.Fatal(err)
		}
	}
}
