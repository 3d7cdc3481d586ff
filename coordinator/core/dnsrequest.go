package core

import (
	"crypto/x509"
	"errors"
	"slices"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
)

// requestedDNS returns the DNS names a workload's CSR asks for (the launcher puts the
// CLOISTER_DNS_NAMES the injector set there), each checked by manifest.CheckRequestedDNS,
// the same function the injector filters with. Any name not allowed refuses the activation
// (POLICY), naming the name and the reason: a certificate silently without a name its
// instance asked for would fail at its clients far from the cause, and a refusal cannot hand
// out a name it should not. Names in tls.dns are issued anyway and are not repeated.
func requestedDNS(m *manifest.Manifest, workload string, csr *x509.CertificateRequest) ([]string, error) {
	if len(csr.IPAddresses) > 0 || len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return nil, errorf(api.CodeBadRequest, "csr: requests IP, URI or email names; a workload may request DNS names only (its addresses and SPIFFE ID come from the manifest)")
	}
	if len(csr.DNSNames) > manifest.MaxRequestedDNS {
		return nil, errorf(api.CodeBadRequest, "csr: requests %d DNS names; at most %d allowed", len(csr.DNSNames), manifest.MaxRequestedDNS)
	}
	var out []string
	var errs []error
	for _, n := range csr.DNSNames {
		if err := m.CheckRequestedDNS(workload, n); err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &Error{Code: api.CodePolicy, Message: "workload " + quoteBounded(workload) + ": " + err.Error(), Err: err}
	}
	return out, nil
}

// dnsNames returns the certificate's DNS names: the manifest's, then the requested ones it
// lacks.
func dnsNames(fixed, requested []string) []string {
	if len(requested) == 0 {
		return fixed
	}
	out := slices.Clip(fixed)
	for _, n := range requested {
		if !slices.Contains(fixed, n) {
			out = append(out, n)
		}
	}
	return out
}
