package pki

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

const (
	// maxTrustDomainLength and maxSPIFFEIDLength are the SPIFFE limits.
	maxTrustDomainLength = 255
	maxSPIFFEIDLength    = 2048
)

// SPIFFEID returns the SPIFFE ID spiffe://<trustDomain>/<name>. name is the
// path without its leading slash, one or more segments separated by "/",
// e.g. "web" or "workload/web".
//
// Both parts are checked against the SPIFFE ID specification: the trust
// domain is 1 to 255 bytes of lowercase letters, digits, '.', '-' and '_';
// each path segment is non-empty, not "." or "..", and made of letters,
// digits, '.', '-' and '_'; the whole ID is at most 2048 bytes.
func SPIFFEID(trustDomain, name string) (*url.URL, error) {
	if err := validateTrustDomain(trustDomain); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("pki: SPIFFE ID name is empty, expected a path such as \"web\"")
	}
	for i, seg := range strings.Split(name, "/") {
		if err := validatePathSegment(seg); err != nil {
			return nil, fmt.Errorf("pki: SPIFFE ID name %q, segment %d: %w", name, i+1, err)
		}
	}
	u := &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/" + name}
	if n := len(u.String()); n > maxSPIFFEIDLength {
		return nil, fmt.Errorf("pki: SPIFFE ID is %d bytes, at most %d allowed", n, maxSPIFFEIDLength)
	}
	return u, nil
}

func validateTrustDomain(td string) error {
	if td == "" || len(td) > maxTrustDomainLength {
		return fmt.Errorf("pki: trust domain is %d bytes, expected 1 to %d", len(td), maxTrustDomainLength)
	}
	for i := range len(td) {
		if c := td[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("pki: trust domain %q has %q at byte %d; allowed: lowercase letters, digits, '.', '-', '_'", td, c, i)
		}
	}
	return nil
}

func validatePathSegment(seg string) error {
	switch seg {
	case "":
		return errors.New("empty segment (leading, trailing or doubled '/')")
	case ".", "..":
		return fmt.Errorf("segment %q is not allowed", seg)
	}
	for i := range len(seg) {
		if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%q at byte %d; allowed: letters, digits, '.', '-', '_'", c, i)
		}
	}
	return nil
}
