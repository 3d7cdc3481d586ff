package sgx

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParsePCKChain parses PEM certification data (certification data type 5) into a certificate
// chain ordered leaf first. The certificates may appear in any order; bytes around them may only
// be whitespace and NUL (quotes end their chain with "\n\0"). The chain must be linear: one leaf,
// each certificate issued by the next, without duplicates. It does not check signatures.
func ParsePCKChain(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for {
		start := bytes.Index(rest, []byte("-----BEGIN"))
		if start < 0 {
			if !blank(rest) {
				return nil, errors.New("unexpected bytes after the last PEM block; expected only whitespace or NUL")
			}
			break
		}
		if !blank(rest[:start]) {
			return nil, fmt.Errorf("unexpected bytes before PEM block %d; expected only whitespace or NUL", len(certs)+1)
		}
		block, after := pem.Decode(rest[start:])
		if block == nil {
			return nil, fmt.Errorf("PEM block %d is malformed", len(certs)+1)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d has type %q; expected CERTIFICATE", len(certs)+1, block.Type)
		}
		if len(certs) == MaxPCKChainLen {
			return nil, fmt.Errorf("more than %d certificates in the chain", MaxPCKChainLen)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
		rest = after
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate found; expected a PEM PCK certificate chain")
	}
	return orderChain(certs)
}

func blank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', 0:
		default:
			return false
		}
	}
	return true
}

// orderChain orders certs leaf first by matching issuer and subject names.
func orderChain(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	n := len(certs)
	issuer := make([]int, n) // index of the issuer of certs[i], or -1
	issues := make([]bool, n)
	for i, c := range certs {
		issuer[i] = -1
		for j, d := range certs {
			if i == j {
				if bytes.Equal(c.Raw, d.Raw) {
					continue
				}
			} else if bytes.Equal(c.Raw, d.Raw) {
				return nil, fmt.Errorf("certificate %q appears twice", c.Subject.CommonName)
			}
			if i != j && bytes.Equal(c.RawIssuer, d.RawSubject) {
				if issuer[i] >= 0 {
					return nil, fmt.Errorf("certificate %q has two possible issuers in the chain", c.Subject.CommonName)
				}
				issuer[i] = j
				issues[j] = true
			}
		}
	}
	leaf := -1
	for i := range certs {
		if !issues[i] {
			if leaf >= 0 {
				return nil, fmt.Errorf("chain has two leaves, %q and %q; expected one linear chain", certs[leaf].Subject.CommonName, certs[i].Subject.CommonName)
			}
			leaf = i
		}
	}
	if leaf < 0 {
		return nil, errors.New("chain has no leaf certificate (issuers form a loop)")
	}
	ordered := make([]*x509.Certificate, 0, n)
	for i := leaf; i >= 0 && len(ordered) < n; i = issuer[i] {
		ordered = append(ordered, certs[i])
	}
	if len(ordered) != n {
		return nil, fmt.Errorf("chain is not linear: %d of %d certificates are on the path from the leaf", len(ordered), n)
	}
	return ordered, nil
}
