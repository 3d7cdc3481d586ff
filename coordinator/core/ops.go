package core

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// Secrets returns the values of the named shared secrets to the user whose client certificate
// is cert; the user needs the read action on each of them.
func (c *Core) Secrets(ctx context.Context, cert *x509.Certificate, names []string) (map[string]api.Secret, error) {
	d := c.current()
	if d == nil {
		return nil, notReady("no manifest has been set yet")
	}
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, errorf(api.CodeUnauthenticated, "reading secrets needs a client certificate of a manifest user")
	}
	if len(names) == 0 {
		return nil, errorf(api.CodeBadRequest, "name the secrets to read (name=…)")
	}
	out := map[string]api.Secret{}
	for _, name := range names {
		s, ok := d.m.Secrets[name]
		if !ok {
			return nil, errorf(api.CodeNotFound, "secret %s is not defined; defined secrets: %v", quoteBounded(name), slices.Sorted(maps.Keys(d.m.Secrets)))
		}
		if !d.allowed(user, manifest.ResourceSecrets, manifest.Read, name) {
			return nil, errorf(api.CodeForbidden, "user %q has no role that grants read on secret %q", user, name)
		}
		switch {
		case s.PerInstance:
			return nil, errorf(api.CodeBadRequest, "secret %q is per instance; only workload instances receive it", name)
		case s.Type == manifest.Plain:
			out[name] = api.Secret{Value: []byte(s.Value)}
			continue
		}
		rec, ok := d.secrets[name]
		if !ok {
			return nil, errorf(api.CodeNotFound, "user-defined secret %q has not been set yet", name)
		}
		out[name] = api.Secret{Value: rec.Value, Certificate: rec.Cert, PrivateKey: rec.Key}
	}
	c.log.Info("secrets read", "user", user, "secrets", names)
	return out, nil
}

// SetSecrets sets values of user-defined secrets for the user whose client certificate is
// cert; the user needs the write action on each. Either every value is set or none. The caller
// is authenticated and authorized against the deployment the values are applied to, under the
// lock that applies them.
func (c *Core) SetSecrets(ctx context.Context, cert *x509.Certificate, values map[string][]byte) error {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	d := c.current()
	if d == nil {
		return notReady("no manifest has been set yet")
	}
	user, err := d.authenticate(cert, c.now())
	if err != nil {
		return err
	}
	if user == "" {
		return errorf(api.CodeUnauthenticated, "setting secrets needs a client certificate of a manifest user")
	}
	if len(values) == 0 {
		return errorf(api.CodeBadRequest, "no secret values given")
	}
	recs := map[string]*secretRecord{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		v := values[name]
		s, ok := d.m.Secrets[name]
		if !ok {
			return errorf(api.CodeNotFound, "secret %s is not defined", quoteBounded(name))
		}
		if s.Type != manifest.UserDefined {
			return errorf(api.CodeBadRequest, "secret %q is of type %s; only user-defined secrets can be set", name, s.Type)
		}
		if !d.allowed(user, manifest.ResourceSecrets, manifest.Write, name) {
			return errorf(api.CodeForbidden, "user %q has no role that grants write on secret %q", user, name)
		}
		if len(v) == 0 || len(v) > s.MaxSize {
			return errorf(api.CodeBadRequest, "secret %q: value of %d bytes; expected 1 to %d bytes", name, len(v), s.MaxSize)
		}
		recs[name] = &secretRecord{Spec: specOf(s), Value: v}
	}
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		for name, rec := range recs {
			if err := putJSON(tx, bucketSecrets, name, rec); err != nil {
				return err
			}
		}
		return c.recordSecretWrite(tx, user, slices.Sorted(maps.Keys(recs)))
	})
	if err != nil {
		return fmt.Errorf("store secrets: %w", err)
	}
	next := *d
	next.secrets = maps.Clone(d.secrets)
	maps.Copy(next.secrets, recs)
	c.mu.Lock()
	c.dep = &next
	c.mu.Unlock()
	c.log.Info("secrets set", "user", user, "secrets", slices.Sorted(maps.Keys(values)))
	return nil
}

// Certificates returns the deployment root and the current intermediate CA, PEM. The
// intermediate is empty while no manifest is set.
func (c *Core) Certificates() (root, intermediate string) {
	d := c.current()
	root = string(c.rootPEM())
	if d != nil {
		intermediate = d.interPEM
	}
	return root, intermediate
}
