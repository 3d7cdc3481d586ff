package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Every workload trusts every certificate the deployment CA issues. A certificate secret is
// issued by that CA and read by users, so if any name in it is one a peer would accept for a
// workload, the secret's readers could pass for that workload. This file decides, for one
// function used both by manifest validation and by the Coordinator when it issues a secret's
// certificate, whether a certificate name could stand for a workload identity.
//
// The comparison is deliberately generous: it refuses a name if any widely used TLS client
// (Go, OpenSSL and so curl, browsers) could match it against a workload identity, reading it
// in every way one of them might:
//
//   - DNS names are compared ASCII case-insensitively, without one trailing dot and without
//     surrounding white space; a common name is also cut at its first NUL byte.
//   - A '*' anywhere in the leftmost label makes a wildcard that covers any one label there
//     (RFC 6125 6.4.3; OpenSSL also matches partial labels such as "d*"): "*.shop.example"
//     covers "db.shop.example" but not "a.b.shop.example" or "shop.example". Wildcards match
//     in both directions: a secret's concrete name under a workload's wildcard is refused too,
//     and two wildcards overlap when they cover the same parent.
//   - Addresses are compared as addresses: IPv4-mapped and IPv4-compatible IPv6 forms equal
//     their IPv4 address, IPv6 spellings are parsed, and a name that a resolver or URL parser
//     would read as an IPv4 address (leading zeros as decimal or as octal, hex parts, fewer
//     than four parts as inet_aton reads them) counts as each of those addresses.
//   - Any spiffe:// URI in the deployment's trust domain is refused, whatever its path: the
//     trust domain belongs to the workloads.
//   - A common name is compared as a DNS name, an address and a SPIFFE ID, against every
//     workload's name, DNS names, addresses and SPIFFE ID, whether or not the certificate has
//     subject alternative names (OpenSSL reads the common name when it has no DNS name, and
//     applications that authorize clients by common name read it always).

// ErrWorkloadIdentity is wrapped by each error [Manifest.CheckCertificateNames] reports for
// a certificate name that could let a certificate secret pass for a workload. (Validate
// reports the same problems as plain *[FieldError] values whose message ends with its text.)
var ErrWorkloadIdentity = errors.New("a certificate secret must not carry a workload's identity")

// CertificateNames are the names in a certificate that a TLS peer may check.
type CertificateNames struct {
	// CommonName is the subject common name; empty means none.
	CommonName string
	// DNS, IP and URI are the subject alternative names, as text.
	DNS []string
	IP  []string
	URI []string
}

// CheckCertificateNames reports every one of names that a TLS client or server could take
// for one of m's workloads: its name, a DNS name, an IP address or its SPIFFE ID (the rules
// are in docs/manifest.md, "Certificate secrets and workload identities"). It returns nil, or
// one error per offending name joined with errors.Join, each wrapping [ErrWorkloadIdentity]
// and naming the workload. Validate applies the same check to the manifest's own certificate
// secrets; the Coordinator calls this on a certificate secret's names before it signs it. It
// indexes m's workload identities on every call, in time linear in their number, and is
// safe for concurrent use on a Manifest that is not modified.
func (m *Manifest) CheckCertificateNames(names CertificateNames) error {
	idx := m.workloadIdentities()
	var errs []error
	report := func(what string, c *identityConflict) {
		if c != nil {
			errs = append(errs, fmt.Errorf("%s %s; %w", what, c, ErrWorkloadIdentity))
		}
	}
	if names.CommonName != "" {
		report("common name", idx.conflict(names.CommonName, kindCommonName))
	}
	for _, n := range names.DNS {
		report("DNS name", idx.conflict(n, kindDNSName))
	}
	for _, n := range names.IP {
		report("IP address", idx.conflict(n, kindIP))
	}
	for _, n := range names.URI {
		report("URI", idx.conflict(n, kindSPIFFE))
	}
	return errors.Join(errs...)
}

// checkSecretNames refuses certificate secrets issued by the deployment CA whose common name
// (given or the default, the secret's name) or subject alternative names could stand for a
// workload identity. Self-signed secrets are not checked: no workload trusts them unless its
// templates install them, and then it trusts exactly what they name.
func (m *Manifest) checkSecretNames(ps *problems) {
	idx := m.workloadIdentities()
	report := func(p, prefix string, c *identityConflict) {
		if c != nil {
			ps.add(p, "%s%s; %v", prefix, c, ErrWorkloadIdentity)
		}
	}
	for _, name := range sortedKeys(m.Secrets) {
		s, p := m.Secrets[name], keyPath("$.secrets", name)
		if s.Type != Certificate || s.SelfSigned {
			continue
		}
		if m.has(p+".common_name", s.CommonName != "") {
			report(p+".common_name", "", idx.conflict(s.CommonName, kindCommonName))
		} else {
			report(p, "the default common name (the secret's name) ", idx.conflict(name, kindCommonName))
		}
		for i, n := range s.DNS {
			report(indexPath(p+".dns", i), "", idx.conflict(n, kindDNSName))
		}
		for i, n := range s.IP {
			report(indexPath(p+".ip", i), "", idx.conflict(n, kindIP))
		}
	}
}

// nameKind says how a name is written, and so which readings of it apply.
type nameKind uint8

const (
	readDNS    nameKind = 1 << iota // a DNS name, perhaps a wildcard
	readIP                          // an IP address, however a parser might read it
	readSPIFFE                      // a spiffe:// URI

	kindIP         = readIP
	kindSPIFFE     = readSPIFFE
	kindDNSName    = readDNS | readIP // some clients read an address-like DNS name as an address
	kindCommonName = readDNS | readIP | readSPIFFE
)

// reading is one way a peer may read a name.
type reading struct {
	kind nameKind // exactly one of readDNS, readIP, readSPIFFE
	// readDNS: the name, normalised; for a wildcard, the parent the wildcard stands under
	// ("shop.example" for "*.shop.example", "" for "*").
	dns      string
	wildcard bool
	ip       netip.Addr // readIP, unmapped
	td, path string     // readSPIFFE: the trust domain, normalised, and the rest
}

// readings returns every way a peer may read s written as kinds, without duplicates.
func readings(s string, kinds nameKind) []reading {
	var out []reading
	add := func(r reading) {
		for _, o := range out {
			if o == r {
				return
			}
		}
		out = append(out, r)
	}
	texts := []string{s}
	if i := strings.IndexByte(s, 0); i >= 0 {
		texts = append(texts, s[:i]) // what a C client comparing C strings sees
	}
	for _, t := range texts {
		t = strings.Trim(t, " \t\r\n")
		if kinds&readDNS != 0 {
			if r, ok := readDNSName(t); ok {
				add(r)
			}
		}
		if kinds&readIP != 0 {
			for _, a := range readAddrs(t) {
				add(reading{kind: readIP, ip: a})
			}
		}
		if kinds&readSPIFFE != 0 {
			if r, ok := readSPIFFEID(t); ok {
				add(r)
			}
		}
	}
	return out
}

// readDNSName reads t as a DNS name or wildcard pattern.
func readDNSName(t string) (reading, bool) {
	t = lowerASCII(t)
	if len(t) > 1 {
		t = strings.TrimSuffix(t, ".")
	}
	if t == "" || t == "." {
		return reading{}, false
	}
	first, parent, _ := strings.Cut(t, ".")
	if strings.Contains(first, "*") {
		return reading{kind: readDNS, dns: parent, wildcard: true}, true
	}
	return reading{kind: readDNS, dns: t}, true
}

// parentDomain returns the name after the leftmost label of a concrete DNS name, which a
// wildcard must stand under to cover it; "" for a single label.
func parentDomain(dns string) string {
	_, parent, _ := strings.Cut(dns, ".")
	return parent
}

// readAddrs returns the IP addresses t could be read as: by netip (IPv6 in any spelling,
// brackets and zone ignored, IPv4-mapped and -compatible forms as IPv4), as dotted decimal
// with leading zeros, and as inet_aton reads it (octal, hex, one to four parts).
func readAddrs(t string) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.WithZone("").Unmap()
		for _, o := range out {
			if o == a {
				return
			}
		}
		out = append(out, a)
	}
	t = strings.TrimPrefix(strings.TrimSuffix(t, "]"), "[")
	if a, err := netip.ParseAddr(t); err == nil {
		add(a)
		if b := a.As16(); a.Is6() && !a.Is4In6() && allZero(b[:12]) && !allZero(b[12:14]) {
			add(netip.AddrFrom4([4]byte(b[12:]))) // IPv4-compatible ::a.b.c.d (deprecated)
		}
	}
	if len(t) > 1 {
		t = strings.TrimSuffix(t, ".") // URL parsers accept "10.0.0.5."
	}
	if a, ok := parseIPv4(t, 10); ok {
		add(a)
	}
	if a, ok := parseIPv4(t, 0); ok {
		add(a)
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseIPv4 reads t as an IPv4 address of one to four dot-separated numbers, the last
// filling the remaining bytes. With base 10 each part is decimal (leading zeros allowed);
// with base 0 parts are read as inet_aton does: "0x" hex, leading "0" octal, else decimal.
func parseIPv4(t string, base int) (netip.Addr, bool) {
	parts := strings.Split(t, ".")
	if len(parts) > 4 || t == "" {
		return netip.Addr{}, false
	}
	if base == 10 && len(parts) != 4 {
		return netip.Addr{}, false
	}
	var v [4]uint64
	for i, p := range parts {
		if p == "" || len(p) > 32 || strings.ContainsAny(p, "+-_") {
			return netip.Addr{}, false
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		v[i] = n
	}
	var x uint64
	for i := range len(parts) - 1 {
		if v[i] > 255 {
			return netip.Addr{}, false
		}
		x |= v[i] << (24 - 8*i)
	}
	last := v[len(parts)-1]
	if last >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, false
	}
	x |= last
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), true
}

// readSPIFFEID reads t as a spiffe:// URI: its trust domain (lowercase, without user
// information, port, one trailing dot or percent-encoding) and the rest. It accepts what a
// lenient URI parser would, not only valid SPIFFE IDs.
func readSPIFFEID(t string) (reading, bool) {
	const scheme = "spiffe:"
	if len(t) < len(scheme) || lowerASCII(t[:len(scheme)]) != scheme {
		return reading{}, false
	}
	rest := strings.TrimLeft(t[len(scheme):], "/\\")
	host, path := rest, ""
	if i := strings.IndexAny(rest, "/\\?#"); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if h, err := url.PathUnescape(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(lowerASCII(host), ".")
	return reading{kind: readSPIFFE, td: host, path: path}, true
}

// lowerASCII lowers ASCII letters only, as TLS name comparison does.
func lowerASCII(s string) string {
	for i := range len(s) {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// overlaps reports whether some peer could take a and b for the same identity. It is
// symmetric.
func overlaps(a, b reading) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case readDNS:
		switch {
		case a.wildcard == b.wildcard:
			return a.dns == b.dns
		case a.wildcard:
			return parentDomain(b.dns) == a.dns
		default:
			return parentDomain(a.dns) == b.dns
		}
	case readIP:
		return a.ip == b.ip
	default: // readSPIFFE: a trust domain is one identity space
		return a.td == b.td
	}
}

// identityOverlap reports whether certName, written as certKind, could be taken for
// workloadIdentity, written as idKind. With equal kinds it is symmetric.
func identityOverlap(certName string, certKind nameKind, workloadIdentity string, idKind nameKind) bool {
	for _, a := range readings(certName, certKind) {
		for _, b := range readings(workloadIdentity, idKind) {
			if overlaps(a, b) {
				return true
			}
		}
	}
	return false
}

// workloadIdentity is one identity of a workload: its name, a DNS name, an IP address or its
// SPIFFE ID, as the manifest writes it.
type workloadIdentity struct {
	workload string
	what     string // "name", "DNS name", "IP address" or "SPIFFE ID"
	value    string
	kind     nameKind
}

func (id workloadIdentity) String() string {
	switch {
	case id.what == "name":
		return "the name of workload " + quote(id.workload)
	case id.workload == "": // the trust domain
		return fmt.Sprintf("the %s %s of the workloads' SPIFFE IDs", id.what, quote(id.value))
	}
	return fmt.Sprintf("the %s %s of workload %s", id.what, quote(id.value), quote(id.workload))
}

// identityIndex holds every reading of every workload identity of a manifest, indexed so
// that finding the identities a name overlaps costs a few map lookups, not a scan.
type identityIndex struct {
	trustDomain string
	dns         map[string]workloadIdentity     // concrete DNS names (workload names too)
	wildcards   map[string]workloadIdentity     // parent of a wildcard -> the wildcard
	parents     map[string]workloadIdentity     // parent of a concrete name -> a name under it
	ips         map[netip.Addr]workloadIdentity // addresses
	spiffe      map[string]workloadIdentity     // SPIFFE ID path -> identity
}

// workloadIdentities indexes the identities of m's workloads. Where two readings collide
// the first workload in name order is kept, which only affects which one a message names.
func (m *Manifest) workloadIdentities() *identityIndex { return m.workloadIdentitiesExcept("") }

// workloadIdentitiesExcept indexes the identities of m's workloads but the one named except.
func (m *Manifest) workloadIdentitiesExcept(except string) *identityIndex {
	td := DefaultTrustDomain
	if m.Settings.TrustDomain != "" {
		td = m.Settings.TrustDomain
	}
	if r, ok := readSPIFFEID("spiffe://" + td); ok {
		td = r.td
	}
	idx := &identityIndex{
		trustDomain: td,
		dns:         map[string]workloadIdentity{},
		wildcards:   map[string]workloadIdentity{},
		parents:     map[string]workloadIdentity{},
		ips:         map[netip.Addr]workloadIdentity{},
		spiffe:      map[string]workloadIdentity{},
	}
	for _, w := range sortedKeys(m.Workloads) {
		if w == except {
			continue
		}
		wl := m.Workloads[w]
		idx.add(workloadIdentity{w, "name", w, readDNS})
		for _, n := range wl.TLS.DNS {
			idx.add(workloadIdentity{w, "DNS name", n, kindDNSName})
		}
		for _, n := range wl.TLS.IP {
			idx.add(workloadIdentity{w, "IP address", n, kindIP})
		}
		for _, n := range wl.TLS.AllowedDNS {
			idx.add(workloadIdentity{w, "allowed DNS name", n, kindDNSName})
		}
		idx.add(workloadIdentity{w, "SPIFFE ID", m.SPIFFEID(w), kindSPIFFE})
	}
	return idx
}

func (idx *identityIndex) add(id workloadIdentity) {
	first := func(m map[string]workloadIdentity, k string) {
		if _, ok := m[k]; !ok {
			m[k] = id
		}
	}
	for _, r := range readings(id.value, id.kind) {
		switch r.kind {
		case readDNS:
			if r.wildcard {
				first(idx.wildcards, r.dns)
			} else {
				first(idx.dns, r.dns)
				first(idx.parents, parentDomain(r.dns))
			}
		case readIP:
			if _, ok := idx.ips[r.ip]; !ok {
				idx.ips[r.ip] = id
			}
		case readSPIFFE:
			if r.td == idx.trustDomain {
				first(idx.spiffe, r.path)
			}
		}
	}
}

// identityConflict is a certificate name that overlaps a workload identity.
type identityConflict struct {
	name     string // as written
	relation string // "matches", "covers", "is covered by", "overlaps", "is in the trust domain of"
	id       workloadIdentity
}

func (c *identityConflict) String() string {
	return fmt.Sprintf("%s %s %s", quote(c.name), c.relation, c.id)
}

// conflict returns the first workload identity that name, written as kind, overlaps, or nil.
// The result is the same as checking identityOverlap against every identity.
func (idx *identityIndex) conflict(name string, kind nameKind) *identityConflict {
	for _, r := range readings(name, kind) {
		found := func(rel string, id workloadIdentity) *identityConflict {
			return &identityConflict{name: name, relation: rel, id: id}
		}
		switch r.kind {
		case readDNS:
			if r.wildcard {
				if id, ok := idx.wildcards[r.dns]; ok {
					return found("overlaps", id)
				}
				if id, ok := idx.parents[r.dns]; ok {
					return found("covers", id)
				}
			} else {
				if id, ok := idx.dns[r.dns]; ok {
					return found("matches", id)
				}
				if id, ok := idx.wildcards[parentDomain(r.dns)]; ok {
					return found("is covered by", id)
				}
			}
		case readIP:
			if id, ok := idx.ips[r.ip]; ok {
				rel := "matches"
				if r.ip.String() != strings.Trim(name, " \t\r\n") {
					rel = "(read as " + r.ip.String() + ") matches"
				}
				return found(rel, id)
			}
		case readSPIFFE:
			if r.td != idx.trustDomain {
				continue
			}
			if id, ok := idx.spiffe[r.path]; ok {
				return found("matches", id)
			}
			return found("is in", workloadIdentity{what: "trust domain", value: idx.trustDomain})
		}
	}
	return nil
}
