package core

import (
	"crypto/x509"
	"fmt"
	"slices"

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

// Authenticate maps a client certificate to the manifest user it belongs to. A nil certificate,
// or any certificate before the first manifest, is the anonymous caller "". A certificate no
// user has is an error: callers that present one expect to be someone.
func (c *Core) Authenticate(cert *x509.Certificate) (string, error) {
	d := c.current()
	if cert == nil || d == nil {
		// Before the first manifest there are no users: a caller with a certificate is as
		// anonymous as one without (and may set the first manifest).
		return "", nil
	}
	if name, ok := d.users[string(cert.Raw)]; ok {
		return name, nil
	}
	return "", errorf(api.CodeUnauthenticated, "client certificate %q (serial %s) belongs to no user of the manifest",
		cert.Subject.CommonName, cert.SerialNumber.Text(16))
}

// allowed reports whether user holds a role that permits action on resource (and, for
// secrets, on the secret name).
func (d *deployment) allowed(user string, resource manifest.Resource, action manifest.Action, name string) bool {
	u, ok := d.m.Users[user]
	if !ok {
		return false
	}
	for _, rn := range u.Roles {
		r := d.m.Roles[rn]
		if r.Resource != resource || !slices.Contains(r.Actions, action) {
			continue
		}
		if resource == manifest.ResourceSecrets && !slices.Contains(r.Names, name) {
			continue
		}
		return true
	}
	return false
}
