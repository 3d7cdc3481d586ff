package manifest

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// The types below are the data templates execute on. Their exported methods are what
// templates call; every method that can lack its input returns an error naming what is
// missing, never the value.

// tmplData is the data every template executes on.
type tmplData struct {
	Secrets  map[string]*secretView
	Workload *workloadView
	CA       *caView
}

// secretView is a secret as templates see it. Each encoding is computed at most once per
// render, so repeating a reference costs no memory.
type secretView struct {
	name string
	typ  SecretType
	val  SecretValue
	memo [6]*string // Raw, Hex, Base64, Cert, Key, Public
}

func (s *secretView) memoized(i int, encode func() (string, error)) (string, error) {
	if p := s.memo[i]; p != nil {
		return *p, nil
	}
	v, err := encode()
	if err != nil {
		return "", err
	}
	s.memo[i] = &v
	return v, nil
}

func (s *secretView) bytes() ([]byte, error) {
	if len(s.val.Bytes) == 0 {
		return nil, fmt.Errorf("secret %s has no value in the render input", quote(s.name))
	}
	return s.val.Bytes, nil
}

func (s *secretView) pem(what string, b []byte) (string, error) {
	if s.typ != Certificate {
		return "", fmt.Errorf("secret %s is a %s secret; .%s is only for certificate secrets", quote(s.name), s.typ, what)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("secret %s has no %s in the render input", quote(s.name), what)
	}
	return string(b), nil
}

// Raw returns the secret's bytes as a string.
func (s *secretView) Raw() (string, error) {
	return s.memoized(0, func() (string, error) {
		b, err := s.bytes()
		return string(b), err
	})
}

// Hex returns the secret's bytes as lowercase hex.
func (s *secretView) Hex() (string, error) {
	return s.memoized(1, func() (string, error) {
		b, err := s.bytes()
		return hex.EncodeToString(b), err
	})
}

// Base64 returns the secret's bytes in standard, padded base64.
func (s *secretView) Base64() (string, error) {
	return s.memoized(2, func() (string, error) {
		b, err := s.bytes()
		return base64.StdEncoding.EncodeToString(b), err
	})
}

// Cert returns a certificate secret's certificate as PEM.
func (s *secretView) Cert() (string, error) {
	return s.memoized(3, func() (string, error) { return s.pem("Cert", s.val.CertPEM) })
}

// Key returns a certificate secret's PKCS #8 private key as PEM.
func (s *secretView) Key() (string, error) {
	return s.memoized(4, func() (string, error) { return s.pem("Key", s.val.KeyPEM) })
}

// Public returns a certificate secret's public key as PEM.
func (s *secretView) Public() (string, error) {
	return s.memoized(5, func() (string, error) { return s.pem("Public", s.val.PublicPEM) })
}

// workloadView is .Workload.
type workloadView struct{ name, instance, spiffeID, cert, key, chain string }

func need(what, v string) (string, error) {
	if v == "" {
		return "", errors.New("the render input has no " + what)
	}
	return v, nil
}

// Name returns the workload's name.
func (w *workloadView) Name() string { return w.name }

// Instance returns the instance ID.
func (w *workloadView) Instance() (string, error) { return need("instance ID", w.instance) }

// SPIFFEID returns the workload's SPIFFE ID.
func (w *workloadView) SPIFFEID() string { return w.spiffeID }

// Cert returns the workload certificate as PEM.
func (w *workloadView) Cert() (string, error) { return need("workload certificate", w.cert) }

// Key returns the workload's private key as PEM.
func (w *workloadView) Key() (string, error) { return need("workload key", w.key) }

// Chain returns the workload certificate followed by the intermediate CA, as PEM.
func (w *workloadView) Chain() (string, error) { return need("certificate chain", w.chain) }

// caView is .CA.
type caView struct{ root, intermediate string }

// Root returns the deployment's root CA certificate as PEM.
func (c *caView) Root() (string, error) { return need("root CA certificate", c.root) }

// Intermediate returns the deployment's intermediate CA certificate as PEM.
func (c *caView) Intermediate() (string, error) {
	return need("intermediate CA certificate", c.intermediate)
}
