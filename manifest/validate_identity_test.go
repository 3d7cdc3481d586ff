package manifest

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// identityDoc returns the base manifest with workload "server" given DNS names and IP
// addresses, and certificate secret "cert" (issued by the deployment CA) set to s.
func identityDoc(tb testing.TB, dns, ips arr, s obj) obj {
	tb.Helper()
	d := baseDoc(tb)
	tls := obj{}
	if dns != nil {
		tls["dns"] = dns
	}
	if ips != nil {
		tls["ip"] = ips
	}
	at(d, "workloads", "server")["tls"] = tls
	if s != nil {
		s["type"] = "certificate"
		at(d, "secrets")["cert"] = s
	}
	return d
}

// TestValidateRefusesWorkloadIdentity tries every way found for a certificate secret to carry
// a workload's identity and checks that Parse refuses each at the JSON path of the name,
// saying which identity of which workload it could pass for.
func TestValidateRefusesWorkloadIdentity(t *testing.T) {
	const tail = "; a certificate secret must not carry a workload's identity"
	for _, tc := range []struct {
		name     string
		dns, ips arr // the workload's
		secret   obj // the secret "cert"
		edit     func(d obj)
		path     string // "" means $.secrets.cert.common_name
		msg      string
	}{
		// DNS names and wildcards, in both directions.
		{"wildcard SAN covers a workload DNS name", arr{"db.shop.example"}, nil, obj{"dns": arr{"*.shop.example"}}, nil,
			"$.secrets.cert.dns[0]", `"*.shop.example" covers the DNS name "db.shop.example" of workload "server"`},
		{"SAN under a workload wildcard", arr{"*.shop.example"}, nil, obj{"dns": arr{"ok.example", "api.shop.example"}}, nil,
			"$.secrets.cert.dns[1]", `"api.shop.example" is covered by the DNS name "*.shop.example" of workload "server"`},
		{"wildcard SAN equal to a workload wildcard", arr{"*.shop.example"}, nil, obj{"dns": arr{"*.shop.example"}}, nil,
			"$.secrets.cert.dns[0]", `"*.shop.example" overlaps the DNS name "*.shop.example" of workload "server"`},
		{"SAN equal to a workload DNS name", arr{"db.shop.example"}, nil, obj{"dns": arr{"db.shop.example"}}, nil,
			"$.secrets.cert.dns[0]", `"db.shop.example" matches the DNS name "db.shop.example" of workload "server"`},
		{"SAN equal to a workload name", nil, nil, obj{"dns": arr{"server"}}, nil,
			"$.secrets.cert.dns[0]", `"server" matches the name of workload "server"`},
		// Addresses.
		{"IPv4-mapped IPv6 SAN", nil, arr{"10.0.0.5"}, obj{"ip": arr{"::ffff:10.0.0.5"}}, nil,
			"$.secrets.cert.ip[0]", `"::ffff:10.0.0.5" (read as 10.0.0.5) matches the IP address "10.0.0.5" of workload "server"`},
		{"IPv4 SAN for a mapped workload address", nil, arr{"::ffff:10.0.0.5"}, obj{"ip": arr{"10.0.0.5"}}, nil,
			"$.secrets.cert.ip[0]", `"10.0.0.5" matches the IP address "::ffff:10.0.0.5" of workload "server"`},
		{"IPv4-compatible IPv6 SAN", nil, arr{"10.0.0.5"}, obj{"ip": arr{"::10.0.0.5"}}, nil,
			"$.secrets.cert.ip[0]", `"::10.0.0.5" (read as 10.0.0.5) matches`},
		{"IPv6 spelled differently", nil, arr{"2001:db8::1"}, obj{"ip": arr{"2001:0DB8:0:0:0:0:0:0001"}}, nil,
			"$.secrets.cert.ip[0]", `"2001:0DB8:0:0:0:0:0:0001" (read as 2001:db8::1) matches the IP address "2001:db8::1"`},
		{"IP SAN for a workload DNS name that reads as that address", arr{"010.0.0.5"}, nil, obj{"ip": arr{"10.0.0.5"}}, nil,
			"$.secrets.cert.ip[0]", `"10.0.0.5" matches the DNS name "010.0.0.5" of workload "server"`},
		{"IP SAN for the octal reading of a workload DNS name", arr{"010.0.0.5"}, nil, obj{"ip": arr{"8.0.0.5"}}, nil,
			"$.secrets.cert.ip[0]", `"8.0.0.5" matches the DNS name "010.0.0.5"`},
		{"DNS SAN that reads as a workload address", nil, arr{"10.0.0.5"}, obj{"dns": arr{"010.000.000.005"}}, nil,
			"$.secrets.cert.dns[0]", `"010.000.000.005" (read as 10.0.0.5) matches the IP address "10.0.0.5"`},
		// Common names: compared with or without SANs, as a DNS name, an address and a SPIFFE ID.
		{"CN equal to a workload DNS name, no SAN", arr{"db.shop.example"}, nil, obj{"common_name": "db.shop.example"}, nil,
			"", `"db.shop.example" matches the DNS name "db.shop.example" of workload "server"`},
		{"CN equal to a workload DNS name, with a SAN", arr{"db.shop.example"}, nil, obj{"common_name": "db.shop.example", "dns": arr{"other.example"}}, nil,
			"", `"db.shop.example" matches the DNS name`},
		{"CN in capitals with a trailing dot", arr{"db.shop.example"}, nil, obj{"common_name": " DB.Shop.Example. "}, nil,
			"", `" DB.Shop.Example. " matches the DNS name "db.shop.example"`},
		{"CN cut by NUL", arr{"db.shop.example"}, nil, obj{"common_name": "db.shop.example\x00.evil.example"}, nil,
			"", `matches the DNS name "db.shop.example"`},
		{"CN equal to a workload name", nil, nil, obj{"common_name": "server"}, nil,
			"", `"server" matches the name of workload "server"`},
		{"CN wildcard", arr{"db.shop.example"}, nil, obj{"common_name": "*.shop.example"}, nil,
			"", `"*.shop.example" covers the DNS name "db.shop.example"`},
		{"CN partial wildcard", arr{"db.shop.example"}, nil, obj{"common_name": "d*.shop.example"}, nil,
			"", `"d*.shop.example" covers the DNS name "db.shop.example"`},
		{"CN bare wildcard covers a workload name", nil, nil, obj{"common_name": "*"}, nil,
			"", `"*" covers the name of workload "server"`},
		{"CN under a workload wildcard", arr{"*.shop.example"}, nil, obj{"common_name": "api.shop.example"}, nil,
			"", `"api.shop.example" is covered by the DNS name "*.shop.example"`},
		{"CN equal to a workload address", nil, arr{"10.0.0.5"}, obj{"common_name": "10.0.0.5"}, nil,
			"", `"10.0.0.5" matches the IP address "10.0.0.5"`},
		{"CN address with leading zeros", nil, arr{"10.0.0.5"}, obj{"common_name": "010.000.000.005"}, nil,
			"", `"010.000.000.005" (read as 10.0.0.5) matches the IP address "10.0.0.5"`},
		{"CN address as inet_aton reads it", nil, arr{"10.0.0.5"}, obj{"common_name": "167772165"}, nil,
			"", `"167772165" (read as 10.0.0.5) matches`},
		{"CN mapped address", nil, arr{"10.0.0.5"}, obj{"common_name": "[::ffff:a00:5]"}, nil,
			"", `(read as 10.0.0.5) matches`},
		{"CN equal to a workload SPIFFE ID", nil, nil, obj{"common_name": "spiffe://cloister.internal/server"}, nil,
			"", `"spiffe://cloister.internal/server" matches the SPIFFE ID "spiffe://cloister.internal/server" of workload "server"`},
		{"CN SPIFFE ID in capitals", nil, nil, obj{"common_name": "SPIFFE://Cloister.Internal./server"}, nil,
			"", `matches the SPIFFE ID "spiffe://cloister.internal/server"`},
		{"CN SPIFFE ID of no workload in the trust domain", nil, nil, obj{"common_name": "spiffe://cloister.internal/admin"}, nil,
			"", `"spiffe://cloister.internal/admin" is in the trust domain "cloister.internal" of the workloads' SPIFFE IDs`},
		{"CN SPIFFE ID in a custom trust domain", nil, nil, obj{"common_name": "spiffe://shop.example/x"}, func(d obj) { d["settings"] = obj{"trust_domain": "shop.example"} },
			"", `is in the trust domain "shop.example"`},
		// The default common name is the secret's name.
		{"default CN equal to a workload name", nil, nil, nil, func(d obj) { at(d, "secrets")["server"] = obj{"type": "certificate"} },
			"$.secrets.server", `the default common name (the secret's name) "server" matches the name of workload "server"`},
		{"default CN equal to a workload name in capitals", nil, nil, nil, func(d obj) { at(d, "secrets")["SERVER"] = obj{"type": "certificate", "dns": arr{"ok.example"}} },
			"$.secrets.SERVER", `"SERVER" matches the name of workload "server"`},
		{"per-instance secret", arr{"db.shop.example"}, nil, obj{"dns": arr{"*.shop.example"}, "per_instance": true}, nil,
			"$.secrets.cert.dns[0]", `covers`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := identityDoc(t, tc.dns, tc.ips, tc.secret)
			if tc.edit != nil {
				tc.edit(d)
			}
			path := tc.path
			if path == "" {
				path = "$.secrets.cert.common_name"
			}
			_, err := Parse(marshal(t, d))
			wantFieldError(t, err, path, tc.msg, 0)
			if err != nil && !strings.HasSuffix(err.Error(), tail) {
				t.Errorf("error %q does not end with %q", err, tail)
			}
		})
	}
}

// TestValidateAcceptsDistinctCertificateNames checks names that no client would take for a
// workload identity: wildcards one level off, neighbouring addresses, other trust domains,
// and self-signed secrets, which no workload trusts unless told to.
func TestValidateAcceptsDistinctCertificateNames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dns, ips arr
		secret   obj
	}{
		{"wildcard one level below", arr{"db.shop.example"}, nil, obj{"dns": arr{"*.db.shop.example"}}},
		{"wildcard one level above", arr{"db.shop.example"}, nil, obj{"dns": arr{"*.example"}}},
		{"names around a workload wildcard", arr{"*.shop.example"}, nil, obj{"dns": arr{"shop.example", "a.b.shop.example", "api.partner.example", "*.partner.example", "*.b.shop.example"}}},
		{"other addresses", arr{"db.shop.example"}, arr{"10.0.0.5", "2001:db8::1"}, obj{"ip": arr{"::ffff:10.0.0.6", "2001:db8::2", "64:ff9b::a00:5", "10.0.5.0"}}},
		{"label equal to a workload name inside a longer name", nil, nil, obj{"dns": arr{"server.partner.example"}, "common_name": "server.partner.example"}},
		{"free-text CN", arr{"db.shop.example"}, arr{"10.0.0.5"}, obj{"common_name": "Shop signing key (server)"}},
		{"CN SPIFFE ID of another trust domain", nil, nil, obj{"common_name": "spiffe://partner.example/server"}},
		{"CN wildcard elsewhere", arr{"db.shop.example"}, nil, obj{"common_name": "*.partner.example"}},
		{"self-signed with a workload's names", arr{"*.shop.example"}, arr{"10.0.0.5"},
			obj{"dns": arr{"db.shop.example"}, "ip": arr{"::ffff:10.0.0.5"}, "common_name": "server", "self_signed": true}},
		{"self-signed CA named like a workload", nil, nil, obj{"common_name": "server", "self_signed": true, "is_ca": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := identityDoc(t, tc.dns, tc.ips, tc.secret)
			if _, err := Parse(marshal(t, d)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
	t.Run("self-signed secret named like a workload", func(t *testing.T) {
		d := baseDoc(t)
		at(d, "secrets")["server"] = obj{"type": "certificate", "self_signed": true}
		if _, err := Parse(marshal(t, d)); err != nil {
			t.Fatalf("Parse: %v", err)
		}
	})
}

// TestIdentityOverlap is the table of the overlap function itself: one name against one
// identity, each written as a given kind.
func TestIdentityOverlap(t *testing.T) {
	const (
		dns = kindDNSName
		ip  = kindIP
		cn  = kindCommonName
		uri = kindSPIFFE
	)
	for _, tc := range []struct {
		name     string
		nameKind nameKind
		id       string
		idKind   nameKind
		want     bool
	}{
		{"db.shop.example", dns, "db.shop.example", dns, true},
		{"DB.shop.example.", cn, "db.shop.example", dns, true},
		{"db.shop.example", dns, "db.shop.example.", dns, true},
		{"*.shop.example", dns, "db.shop.example", dns, true},
		{"db.shop.example", dns, "*.shop.example", dns, true},
		{"*.shop.example", dns, "*.shop.example", dns, true},
		{"*.shop.example", dns, "a.b.shop.example", dns, false},
		{"*.shop.example", dns, "shop.example", dns, false},
		{"*.shop.example", dns, "*.b.shop.example", dns, false},
		{"*.example", dns, "db.shop.example", dns, false},
		{"x*.shop.example", cn, "db.shop.example", dns, true}, // treated as covering any label
		{"db.*.example", cn, "db.shop.example", dns, false},   // wildcards only in the leftmost label
		{"*", cn, "server", readDNS, true},
		{"*", cn, "db.shop.example", dns, false},
		{"server", cn, "server", readDNS, true},
		{"server", dns, "server.shop.example", dns, false},
		{"10.0.0.5", ip, "10.0.0.5", ip, true},
		{"::ffff:10.0.0.5", ip, "10.0.0.5", ip, true},
		{"10.0.0.5", ip, "::ffff:10.0.0.5", ip, true},
		{"::ffff:a00:5", ip, "10.0.0.5", ip, true},
		{"::10.0.0.5", ip, "10.0.0.5", ip, true},
		{"64:ff9b::10.0.0.5", ip, "10.0.0.5", ip, false},
		{"2001:DB8:0::1", ip, "2001:db8::1", ip, true},
		{"fe80::1%eth0", cn, "fe80::1", ip, true},
		{"10.0.0.6", ip, "10.0.0.5", ip, false},
		{"::1", ip, "0.0.0.1", ip, false},
		{"010.0.0.5", cn, "10.0.0.5", ip, true}, // decimal with leading zeros
		{"010.0.0.5", cn, "8.0.0.5", ip, true},  // octal, as inet_aton reads it
		{"0xa.0.0.5", cn, "10.0.0.5", ip, true},
		{"10.5", cn, "10.0.0.5", ip, true},
		{"167772165", cn, "10.0.0.5", ip, true},
		{"10.0.0.5.", cn, "10.0.0.5", ip, true},
		{"10.0.0.256", cn, "10.0.1.0", ip, false},
		{"4294967296", cn, "0.0.0.0", ip, false},
		{"10.0.0.5", ip, "010.0.0.5", dns, true},
		{"10.0.0.5", dns, "10.0.0.5", readDNS, true}, // both read as DNS text too
		{"10.0.0.5", ip, "server", readDNS, false},
		{"spiffe://cloister.internal/db", uri, "spiffe://cloister.internal/db", uri, true},
		{"spiffe://cloister.internal/anything/else", uri, "spiffe://cloister.internal/db", uri, true},
		{"Spiffe://user@CLOISTER.internal.:443/x", uri, "spiffe://cloister.internal/db", uri, true},
		{"spiffe://cloister%2Einternal/db", uri, "spiffe://cloister.internal/db", uri, true},
		{"spiffe://partner.example/db", uri, "spiffe://cloister.internal/db", uri, false},
		{"spiffe://cloister.internal/db", cn, "spiffe://cloister.internal/db", uri, true},
		{"spiffe://cloister.internal/db", dns, "spiffe://cloister.internal/db", uri, false}, // a DNS SAN is not a URI
		{"https://db.shop.example/", uri, "db.shop.example", dns, false},
		{"", cn, "", cn, false},
		{" ", cn, "*", cn, false},
	} {
		got := identityOverlap(tc.name, tc.nameKind, tc.id, tc.idKind)
		if got != tc.want {
			t.Errorf("identityOverlap(%q, %v, %q, %v) = %v, want %v", tc.name, tc.nameKind, tc.id, tc.idKind, got, tc.want)
		}
		if tc.nameKind == tc.idKind {
			if back := identityOverlap(tc.id, tc.idKind, tc.name, tc.nameKind); back != got {
				t.Errorf("identityOverlap is not symmetric for %q and %q: %v one way, %v the other", tc.name, tc.id, got, back)
			}
		}
	}
}

// TestCheckCertificateNames checks the function the Coordinator calls at issue time: one
// error per offending name, each naming the name's place and the workload, and nil for
// names no workload has.
func TestCheckCertificateNames(t *testing.T) {
	m := &Manifest{Workloads: map[string]Workload{
		"db":  {Package: "p", TLS: TLS{DNS: []string{"db.shop.example"}, IP: []string{"10.0.0.5"}}},
		"web": {Package: "p", TLS: TLS{DNS: []string{"*.web.example"}}},
	}}
	err := m.CheckCertificateNames(CertificateNames{
		CommonName: "web",
		DNS:        []string{"ok.example", "*.shop.example", "a.web.example"},
		IP:         []string{"10.0.0.6", "::ffff:10.0.0.5"},
		URI:        []string{"spiffe://partner.example/db", "spiffe://cloister.internal/db", "spiffe://cloister.internal/new"},
	})
	want := []string{
		`common name "web" matches the name of workload "web"`,
		`DNS name "*.shop.example" covers the DNS name "db.shop.example" of workload "db"`,
		`DNS name "a.web.example" is covered by the DNS name "*.web.example" of workload "web"`,
		`IP address "::ffff:10.0.0.5" (read as 10.0.0.5) matches the IP address "10.0.0.5" of workload "db"`,
		`URI "spiffe://cloister.internal/db" matches the SPIFFE ID "spiffe://cloister.internal/db" of workload "db"`,
		`URI "spiffe://cloister.internal/new" is in the trust domain "cloister.internal" of the workloads' SPIFFE IDs`,
	}
	if !errors.Is(err, ErrWorkloadIdentity) {
		t.Fatalf("CheckCertificateNames = %v, want an error wrapping ErrWorkloadIdentity", err)
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("CheckCertificateNames reported %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if w := want[i] + "; " + ErrWorkloadIdentity.Error(); got[i] != w {
			t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], w)
		}
	}
	if err := m.CheckCertificateNames(CertificateNames{CommonName: "Shop signer", DNS: []string{"api.partner.example", "web.example"}, IP: []string{"10.0.0.6"}}); err != nil {
		t.Errorf("CheckCertificateNames(distinct names) = %v, want nil", err)
	}
}

// identitiesOf lists every identity of m's workloads with its kind, as workloadIdentities
// indexes them, for checking the index against identityOverlap.
func identitiesOf(m *Manifest) []workloadIdentity {
	var out []workloadIdentity
	for _, w := range sortedKeys(m.Workloads) {
		out = append(out, workloadIdentity{w, "name", w, readDNS}, workloadIdentity{w, "SPIFFE ID", m.SPIFFEID(w), kindSPIFFE})
		for _, n := range m.Workloads[w].TLS.DNS {
			out = append(out, workloadIdentity{w, "DNS name", n, kindDNSName})
		}
		for _, n := range m.Workloads[w].TLS.IP {
			out = append(out, workloadIdentity{w, "IP address", n, kindIP})
		}
	}
	return out
}

// checkIndexAgrees fails unless the index finds a conflict for name exactly when
// identityOverlap finds one against some identity of m (or the trust domain itself).
func checkIndexAgrees(t *testing.T, m *Manifest, name string, kind nameKind) {
	t.Helper()
	idx := m.workloadIdentities()
	want := identityOverlap(name, kind, "spiffe://"+idx.trustDomain, kindSPIFFE)
	for _, id := range identitiesOf(m) {
		want = want || identityOverlap(name, kind, id.value, id.kind)
	}
	if got := idx.conflict(name, kind) != nil; got != want {
		t.Fatalf("index finds a conflict for %q (kind %v): %v; identityOverlap against every identity: %v", name, kind, got, want)
	}
}

func TestIdentityIndexAgreesWithOverlap(t *testing.T) {
	m := &Manifest{Workloads: map[string]Workload{
		"db":  {TLS: TLS{DNS: []string{"db.shop.example", "010.0.0.9"}, IP: []string{"10.0.0.5", "2001:db8::1"}}},
		"web": {TLS: TLS{DNS: []string{"*.web.example", "web"}}},
		"x":   {},
	}}
	names := []string{"db", "DB.", "*", "x", "y", "*.shop.example", "db.shop.example", "a.db.shop.example", "*.example",
		"a.web.example", "*.web.example", "web.example", "a*.web.example", "10.0.0.5", "::ffff:10.0.0.5", "167772165",
		"10.0.0.9", "8.0.0.9", "2001:db8:0::1", "spiffe://cloister.internal/x", "spiffe://other/x", "", " ", "\x00"}
	for _, n := range names {
		for _, k := range []nameKind{kindCommonName, kindDNSName, kindIP, kindSPIFFE, readDNS} {
			checkIndexAgrees(t, m, n, k)
		}
	}
}

// FuzzIdentityOverlap checks, for any two names: reading them does not panic, the overlap
// is symmetric when both are written the same way, a name always overlaps itself when it has
// a reading, every address netip parses is among the readings, and the index of a workload
// holding one of them finds exactly what identityOverlap finds.
func FuzzIdentityOverlap(f *testing.F) {
	for _, s := range [][2]string{
		{"*.shop.example", "db.shop.example"}, {"::ffff:10.0.0.5", "10.0.0.5"}, {"DB.shop.example.", "db.shop.example"},
		{"d*.shop.example", "*.shop.example"}, {"010.0.0.5", "8.0.0.5"}, {"0x0a.5", "10.0.0.5"}, {"spiffe://cloister.internal/x", "SPIFFE://a@cloister.internal:1/y"},
		{"*", "server"}, {"db\x00.x", "db"}, {"[fe80::1%eth0]", "fe80::1"}, {"4294967295", "255.255.255.255"}, {"", "."},
	} {
		f.Add(s[0], s[1])
	}
	kinds := []nameKind{kindCommonName, kindDNSName, kindIP, kindSPIFFE, readDNS}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, k := range kinds {
			ab, ba := identityOverlap(a, k, b, k), identityOverlap(b, k, a, k)
			if ab != ba {
				t.Fatalf("identityOverlap(%q, %q, kind %v) = %v, reversed %v", a, b, k, ab, ba)
			}
			if rs := readings(a, k); len(rs) > 0 && !identityOverlap(a, k, a, k) {
				t.Fatalf("%q (kind %v) has readings %v but does not overlap itself", a, k, rs)
			}
		}
		if addr, err := netip.ParseAddr(a); err == nil && !slices.Contains(readAddrs(a), addr.WithZone("").Unmap()) {
			t.Fatalf("readAddrs(%q) = %v, missing %v", a, readAddrs(a), addr)
		}
		m := &Manifest{Workloads: map[string]Workload{"w": {TLS: TLS{DNS: []string{b}, IP: []string{b}}}}}
		for _, k := range kinds {
			checkIndexAgrees(t, m, a, k)
		}
	})
}
