package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

// MaxCollateralItemSize bounds each collateral item this package parses or loads (a TCB Info
// or QE Identity body, a CRL, a certificate chain). Real items are a few KiB; Intel's largest
// CRLs are well under this.
const MaxCollateralItemSize = 1 << 20

// maxLevels bounds the TCB levels of TCB Info or QE Identity (real ones have about 20).
const maxLevels = 1024

// signedDoc is a PCS response body {"<key>":{...},"signature":"<hex r‖s>"} with the exact bytes
// of the signed value.
type signedDoc struct {
	body   []byte
	signed []byte
	sig    [sgx.SignatureSize]byte
}

// Raw returns the PCS response body the value was parsed from. It is nil for a value that was
// built rather than parsed.
func (d *signedDoc) Raw() []byte { return d.body }

// SignedBytes returns the exact bytes the signature covers: the JSON value of the top-level
// key, as it appears in the body, never a re-encoding.
func (d *signedDoc) SignedBytes() []byte { return d.signed }

// Signature returns the ECDSA P-256 signature r ‖ s over SignedBytes.
func (d *signedDoc) Signature() [sgx.SignatureSize]byte { return d.sig }

// parseSigned splits a PCS response body into the exact bytes of the value of key and the
// signature, and decodes that value into w.
func parseSigned(body []byte, key string, w any) (signedDoc, error) {
	if len(body) > MaxCollateralItemSize {
		return signedDoc{}, fmt.Errorf("%d bytes is larger than the %d allowed", len(body), MaxCollateralItemSize)
	}
	var top map[string]json.RawMessage
	err := json.Unmarshal(body, &top)
	if err == nil && top == nil {
		err = errors.New("null")
	}
	if err != nil {
		return signedDoc{}, fmt.Errorf("expected a JSON object {%q:{...},\"signature\":\"<hex>\"}, found %s: %w", key, preview(body), err)
	}
	signed, ok := top[key]
	if !ok {
		return signedDoc{}, fmt.Errorf("%s: required field is missing", key)
	}
	if len(signed) == 0 || signed[0] != '{' {
		return signedDoc{}, fmt.Errorf("%s: expected a JSON object, found %s", key, preview(signed))
	}
	var sigHex *string
	if err := decode("signature", top["signature"], &sigHex); err != nil {
		return signedDoc{}, err
	}
	sig, err := hexField("signature", sigHex, sgx.SignatureSize)
	if err != nil {
		return signedDoc{}, err
	}
	if err := decode(key, signed, w); err != nil {
		return signedDoc{}, err
	}
	d := signedDoc{body: bytes.Clone(body), signed: signed}
	copy(d.sig[:], sig)
	return d, nil
}

// decode unmarshals raw into v, naming the field in type errors. An absent raw is not an
// error (pointer fields stay nil and are reported as missing by the field helpers).
func decode(path string, raw []byte, v any) error {
	if raw == nil {
		return nil
	}
	err := json.Unmarshal(raw, v)
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		p := path
		if ute.Field != "" {
			p += "." + ute.Field
		}
		return fmt.Errorf("%s: expected %s, found %s", p, kindOf(ute.Type), ute.Value)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// kindOf names the JSON kind a Go type is decoded from.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int64, reflect.Int:
		return "an integer"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// The field helpers below take the decoded pointer of a field (nil when absent or null) and
// its path for errors.

func required[T any](path string, p *T) (T, error) {
	if p == nil {
		var zero T
		return zero, fmt.Errorf("%s: required field is missing or null", path)
	}
	return *p, nil
}

func intField(path string, p *int64, lo, hi int64) (int64, error) {
	n, err := required(path, p)
	if err == nil && (n < lo || n > hi) {
		err = fmt.Errorf("%s: expected an integer in %d..%d, found %d", path, lo, hi, n)
	}
	return n, err
}

func hexField(path string, p *string, n int) ([]byte, error) {
	s, err := required(path, p)
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%s: expected %d hex-encoded bytes, found %s", path, n, preview([]byte(s)))
	}
	return b, nil
}

func timeField(path string, p *string) (time.Time, error) {
	s, err := required(path, p)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: expected an RFC 3339 time, found %s", path, preview([]byte(s)))
	}
	return t.UTC(), nil
}

func statusField(path string, p *string) (TCBStatus, error) {
	s, err := required(path, p)
	if err != nil {
		return "", err
	}
	st, err := ParseTCBStatus(s)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// window checks that a document's nextUpdate is after its issueDate.
func window(path string, issue, next time.Time) error {
	if !next.After(issue) {
		return fmt.Errorf("%s.nextUpdate: expected a time after issueDate %s, found %s", path, issue.Format(time.RFC3339), next.Format(time.RFC3339))
	}
	return nil
}

// preview returns a short, quoted excerpt of b for error messages.
func preview(b []byte) string {
	const max = 40
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// into returns a function that stores v in *dst when err is nil and returns err, so that
// several field helpers can be listed in one firstErr: into(&x)(timeField(...)).
func into[T any](dst *T) func(v T, err error) error {
	return func(v T, err error) error {
		if err == nil {
			*dst = v
		}
		return err
	}
}

var errNotParsed = errors.New("not parsed from a PCS response body (Raw is empty)")
