package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// A workload instance may ask for DNS names in its certificate besides the manifest's
// tls.dns: on Kubernetes the injector puts the names of the pod's Services in
// CLOISTER_DNS_NAMES and the launcher requests them. The names come from the host, so the
// Coordinator issues one only if CheckRequestedDNS allows it, and the injector filters with
// the same function so that it never injects a name the Coordinator would refuse.
//
// A requested name is allowed when all of these hold:
//
//   - it is a concrete lowercase DNS name (no wildcard) of at most MaxRequestedDNSLen bytes
//     that no client could read as an IP address;
//   - it is one of the workload's tls.dns or tls.allowed_dns entries, or is covered by a
//     wildcard among them ("*.apps.svc" covers "web.apps.svc", not "a.b.apps.svc");
//   - no TLS peer could take it for another workload's identity (its name, DNS names, allowed
//     DNS patterns, addresses, SPIFFE ID) or for a name of a certificate secret the
//     deployment CA issues.
//
// Validate refuses allowed_dns patterns that overlap another workload's identity or a
// certificate secret's name, so the last rule holds by construction for a valid manifest;
// CheckRequestedDNS checks it again for every name, so that it holds whatever the manifest's
// history.

// Bounds on requested DNS names: how many one activation may ask for, and how long each is.
const (
	MaxRequestedDNS    = 32
	MaxRequestedDNSLen = 253
	// maxAllowedDNS bounds a workload's tls.allowed_dns.
	maxAllowedDNS = 64
)

// ErrDNSNotAllowed is wrapped by every error of [Manifest.CheckRequestedDNS].
var ErrDNSNotAllowed = errors.New("DNS name not allowed for the workload certificate")

// CheckRequestedDNS reports whether an instance of workload may have name in its certificate
// (the rules are above and in docs/manifest.md, "Requested DNS names"). It returns nil or an
// error wrapping [ErrDNSNotAllowed] (and [ErrWorkloadIdentity] for an overlap) that names
// the reason. It indexes the other workloads' identities on each call, in time linear in
// their number, and is safe for concurrent use on a Manifest that is not modified.
func (m *Manifest) CheckRequestedDNS(workload, name string) error {
	w, ok := m.Workloads[workload]
	if !ok {
		return fmt.Errorf("%w: unknown workload %s", ErrDNSNotAllowed, quote(workload))
	}
	if err := checkRequestedName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrDNSNotAllowed, err)
	}
	if !dnsCovered(name, w.TLS.DNS) && !dnsCovered(name, w.TLS.AllowedDNS) {
		allowed := append(append([]string{}, w.TLS.DNS...), w.TLS.AllowedDNS...)
		if len(allowed) == 0 {
			return fmt.Errorf("%w: %s is not among workload %s's tls.dns or tls.allowed_dns, which are empty", ErrDNSNotAllowed, quote(name), quote(workload))
		}
		return fmt.Errorf("%w: %s is not among workload %s's tls.dns or tls.allowed_dns (%s) nor covered by a wildcard there",
			ErrDNSNotAllowed, quote(name), quote(workload), strings.Join(allowed, ", "))
	}
	if c := m.otherWorkloadConflict(workload, name); c != nil {
		return fmt.Errorf("%w: %s; %w", ErrDNSNotAllowed, c, ErrWorkloadIdentity)
	}
	if s, n := m.secretNameOverlap(name); s != "" {
		return fmt.Errorf("%w: %s overlaps %s of certificate secret %s", ErrDNSNotAllowed, quote(name), quote(n), quote(s))
	}
	return nil
}

// otherWorkloadConflict returns the first identity of a workload other than workload that
// name, a requested name that passed checkRequestedName, overlaps, or nil. Such a name has
// exactly one reading, as a concrete DNS name (no address, no SPIFFE ID, no NUL), so only the
// DNS readings of workload names, DNS names and allowed DNS names can overlap it; this
// compares against those directly, without the index and its allocations, since it runs in
// every activation that requests names. The result is the same as the index's conflict.
func (m *Manifest) otherWorkloadConflict(workload, name string) *identityConflict {
	nr := reading{kind: readDNS, dns: name}
	check := func(w, what, v string, kind nameKind) *identityConflict {
		var rs []reading
		if strings.IndexByte(v, 0) >= 0 || strings.TrimSpace(v) != v {
			rs = readings(v, kind&readDNS) // the rare form: every reading
		} else if r, ok := readDNSName(v); ok {
			rs = []reading{r}
		}
		for _, r := range rs {
			if overlaps(nr, r) {
				rel := "matches"
				if r.wildcard {
					rel = "is covered by"
				}
				return &identityConflict{name: name, relation: rel, id: workloadIdentity{w, what, v, kind}}
			}
		}
		return nil
	}
	// Unsorted (sorting the names would cost more than the comparisons); the conflict of the
	// first workload in name order is kept so that the message is always the same.
	var first *identityConflict
	for w, wl := range m.Workloads {
		if w == workload || first != nil && first.id.workload < w {
			continue
		}
		c := check(w, "name", w, readDNS)
		for _, v := range wl.TLS.DNS {
			if c == nil {
				c = check(w, "DNS name", v, kindDNSName)
			}
		}
		for _, v := range wl.TLS.AllowedDNS {
			if c == nil {
				c = check(w, "allowed DNS name", v, kindDNSName)
			}
		}
		if c != nil {
			first = c
		}
	}
	return first
}

// checkRequestedName checks the form of a requested name.
func checkRequestedName(name string) error {
	switch {
	case name == "" || len(name) > MaxRequestedDNSLen:
		return fmt.Errorf("expected a DNS name of 1 to %d bytes, found %d bytes", MaxRequestedDNSLen, len(name))
	case strings.Contains(name, "*"):
		return fmt.Errorf("expected a DNS name without wildcard, found %s", quote(name))
	case len(readAddrs(name)) > 0:
		return fmt.Errorf("expected a DNS name, found %s, which clients may read as an IP address", quote(name))
	}
	return checkDNSName(name)
}

// dnsCovered reports whether name is one of list or covered by one of its wildcards ("*.a.b"
// covers exactly one label before "a.b").
func dnsCovered(name string, list []string) bool {
	for _, a := range list {
		if a == name {
			return true
		}
		if parent, ok := strings.CutPrefix(a, "*."); ok {
			if label, rest, ok := strings.Cut(name, "."); ok && label != "" && rest == parent {
				return true
			}
		}
	}
	return false
}

// secretNameOverlap returns a certificate secret issued by the deployment CA, and its name,
// that a peer could take name (a DNS name) for, or "".
func (m *Manifest) secretNameOverlap(name string) (secret, secretName string) {
	for sn, s := range m.Secrets { // the first in name order: see otherWorkloadConflict
		if s.Type != Certificate || s.SelfSigned || secret != "" && secret < sn {
			continue
		}
		cn := s.CommonName
		if cn == "" {
			cn = sn
		}
		found := ""
		if identityOverlap(name, kindDNSName, cn, kindCommonName) {
			found = cn
		}
		for _, d := range s.DNS {
			if found == "" && identityOverlap(name, kindDNSName, d, kindDNSName) {
				found = d
			}
		}
		for _, ip := range s.IP {
			if found == "" && identityOverlap(name, kindDNSName, ip, kindIP) {
				found = ip
			}
		}
		if found != "" {
			secret, secretName = sn, found
		}
	}
	return secret, secretName
}

// checkAllowedDNS validates every workload's tls.allowed_dns: well-formed names or patterns
// that stand for no other workload's identity. (Certificate secrets' names are checked
// against them by checkSecretNames, which counts them as identities of their workload.)
func (m *Manifest) checkAllowedDNS(ps *problems) {
	for _, name := range sortedKeys(m.Workloads) {
		w, p := m.Workloads[name], keyPath("$.workloads", name)+".tls.allowed_dns"
		if len(w.TLS.AllowedDNS) == 0 {
			continue
		}
		if len(w.TLS.AllowedDNS) > maxAllowedDNS {
			ps.add(p, "expected at most %d names, found %d", maxAllowedDNS, len(w.TLS.AllowedDNS))
			continue
		}
		idx := m.workloadIdentitiesExcept(name)
		checkList(ps, p, "DNS name", w.TLS.AllowedDNS, func(dns string) error {
			if err := checkDNSName(dns); err != nil {
				return err
			}
			if parent, ok := strings.CutPrefix(dns, "*."); ok && !strings.Contains(parent, ".") {
				return fmt.Errorf("expected a wildcard under a name of at least two labels (such as *.apps.svc), found %s", quote(dns))
			}
			labels := strings.Split(dns, ".")
			if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
				return fmt.Errorf("expected a DNS name whose last label is not all digits (clients may read it as an IP address), found %s", quote(dns))
			}
			if c := idx.conflict(dns, kindDNSName); c != nil {
				return fmt.Errorf("%s; a requested name must not stand for another workload's identity", c)
			}
			return nil
		})
	}
}
