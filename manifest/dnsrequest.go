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
	if c := m.workloadIdentitiesExcept(workload).conflict(name, kindDNSName); c != nil {
		return fmt.Errorf("%w: %s; %w", ErrDNSNotAllowed, c, ErrWorkloadIdentity)
	}
	if s, n := m.secretNameOverlap(name); s != "" {
		return fmt.Errorf("%w: %s overlaps %s of certificate secret %s", ErrDNSNotAllowed, quote(name), quote(n), quote(s))
	}
	return nil
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
	for _, sn := range sortedKeys(m.Secrets) {
		s := m.Secrets[sn]
		if s.Type != Certificate || s.SelfSigned {
			continue
		}
		cn := s.CommonName
		if cn == "" {
			cn = sn
		}
		if identityOverlap(name, kindDNSName, cn, kindCommonName) {
			return sn, cn
		}
		for _, d := range s.DNS {
			if identityOverlap(name, kindDNSName, d, kindDNSName) {
				return sn, d
			}
		}
		for _, ip := range s.IP {
			if identityOverlap(name, kindDNSName, ip, kindIP) {
				return sn, ip
			}
		}
	}
	return "", ""
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
