package pcs

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/cloister-dev/cloister/sgx/verify"
)

// decodeIssuerChain decodes an issuer-chain header: a URL-encoded PEM certificate chain, leaf
// first. Intel percent-encodes it (a space is %20, a plus %2B); some services encode spaces as
// "+", so a value that is not a chain after path unescaping is tried with query unescaping.
func decodeIssuerChain(value string) ([]*x509.Certificate, error) {
	if len(value) > MaxHeaderSize {
		return nil, fmt.Errorf("%d bytes is larger than the %d allowed", len(value), MaxHeaderSize)
	}
	text, err := url.PathUnescape(value)
	if err != nil {
		return nil, fmt.Errorf("expected a URL-encoded PEM certificate chain: %w", err)
	}
	chain, err := verify.ParseCertChain([]byte(text))
	if err != nil && strings.Contains(value, "+") {
		if text, qerr := url.QueryUnescape(value); qerr == nil {
			if c, qerr := verify.ParseCertChain([]byte(text)); qerr == nil {
				return c, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("expected a URL-encoded PEM certificate chain: %w", err)
	}
	return chain, nil
}

// decodeCRL parses a CRL response body: DER, PEM, or hex-encoded DER or PEM (what a PCCS
// serves for the root CA CRL). Whitespace around hex or PEM text is ignored; DER is taken as
// is.
func decodeCRL(body []byte) (*x509.RevocationList, error) {
	if text := bytes.TrimSpace(body); len(text) > 0 && isHex(text) {
		b := make([]byte, hex.DecodedLen(len(text)))
		if _, err := hex.Decode(b, text); err == nil {
			if crl, err := verify.ParseCRL(b); err == nil {
				return crl, nil
			}
		}
	}
	crl, err := verify.ParseCRL(body)
	if err != nil {
		return nil, fmt.Errorf("expected a DER, PEM or hex-encoded CRL: %w", err)
	}
	return crl, nil
}

// isHex reports whether b holds only hexadecimal digits, in an even number.
func isHex(b []byte) bool {
	if len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
