package core

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/pki"
)

// userIndex maps each user's certificate (DER, as a string) to the user's name.
func userIndex(m *manifest.Manifest) (map[string]string, error) {
	idx := map[string]string{}
	for name, u := range m.Users {
		certs, err := pki.ParseCertsPEM([]byte(u.Certificate))
		if err != nil || len(certs) != 1 {
			return nil, fmt.Errorf("user %q: certificate: %v", name, err)
		}
		idx[string(certs[0].Raw)] = name
	}
	return idx, nil
}

// authenticate maps a client certificate to the user of d it belongs to. A nil certificate is
// the anonymous caller "". A certificate no user of d has, or one outside its validity period
// at now, is an error: callers that present one expect to be someone.
//
// Callers that change state authenticate against the same deployment they authorize against
// and change, under setMu, after the request body was read: a certificate replaced while a
// request was in flight must not be honoured.
func (d *deployment) authenticate(cert *x509.Certificate, now time.Time) (string, error) {
	if cert == nil {
		return "", nil
	}
	name, ok := d.users[string(cert.Raw)]
	if !ok {
		return "", errorf(api.CodeUnauthenticated, "client certificate %s (serial %s) belongs to no user of the manifest (version %d)",
			quoteBounded(cert.Subject.CommonName), boundString(cert.SerialNumber.Text(16)), d.version)
	}
	switch {
	case now.After(cert.NotAfter):
		return "", errorf(api.CodeUnauthenticated, "user %q: certificate expired at %s (now %s); a user with the manifest update role must replace it",
			name, cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return "", errorf(api.CodeUnauthenticated, "user %q: certificate is not valid before %s (now %s)",
			name, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return name, nil
}

// Authenticate maps a client certificate to the current manifest's user it belongs to; see
// [deployment.authenticate]. Before the first manifest there are no users and every caller is
// anonymous (and may set the first manifest). It is for read-only callers and diagnostics:
// changes authenticate inside the operation that applies them.
func (c *Core) Authenticate(cert *x509.Certificate) (string, error) {
	d := c.current()
	if d == nil {
		return "", nil
	}
	return d.authenticate(cert, c.now())
}

// allowed reports whether user holds a role that permits action on resource (and, for
// secrets, on the secret name).
func (d *deployment) allowed(user string, resource manifest.Resource, action manifest.Action, name string) bool {
	return allowed(d.m, user, resource, action, name)
}

// allowed reports whether user of m holds a role that permits action on resource (and, for
// secrets and packages, on the one called name).
func allowed(m *manifest.Manifest, user string, resource manifest.Resource, action manifest.Action, name string) bool {
	return m.Allowed(user, resource, action, name)
}

// checkUpdaters refuses a manifest in which users hold the manifest update role but fewer
// than governance.update_threshold of their certificates are valid at now: once set, nobody
// could ever update it again. A manifest with no updater at all is a deliberate choice (a
// deployment nobody may change) and allowed.
func checkUpdaters(m *manifest.Manifest, now time.Time) error {
	var problems []string
	valid := 0
	updaters := m.Updaters()
	for _, name := range updaters {
		certs, err := pki.ParseCertsPEM([]byte(m.Users[name].Certificate))
		if err != nil || len(certs) != 1 {
			return fmt.Errorf("user %q: certificate: %v", name, err)
		}
		c := certs[0]
		switch {
		case now.After(c.NotAfter):
			problems = append(problems, fmt.Sprintf("%s: expired at %s", name, c.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(c.NotBefore):
			problems = append(problems, fmt.Sprintf("%s: not valid before %s", name, c.NotBefore.UTC().Format(time.RFC3339)))
		default:
			valid++
		}
	}
	k := m.Governance.UpdateThreshold
	if len(updaters) == 0 || valid >= k {
		return nil
	}
	if valid == 0 {
		return errorf(api.CodeManifestInvalid, "manifest rejected: no user with the manifest update role has a certificate valid now (%s); nobody could update the deployment again",
			strings.Join(problems, "; "))
	}
	return errorf(api.CodeManifestInvalid, "manifest rejected: governance.update_threshold is %d but only %d user(s) with the manifest update role have a certificate valid now (%s); no update could be approved again",
		k, valid, strings.Join(problems, "; "))
}
