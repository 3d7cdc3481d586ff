package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bounds on what one entry may hold; they keep every parser of this package linear and
// small. An encoded entry is at most MaxEntrySize bytes.
const (
	MaxEntrySize  = 16 << 10
	MaxFields     = 64
	maxNameLen    = 128  // kind, actor, field names
	maxFieldValue = 4096 // one field value
)

// Kinds of entries the Coordinator writes. A verifier accepts any kind that is well-formed, so
// that a newer Coordinator's log still verifies with an older client.
const (
	KindCoordinatorStart = "coordinator.start"
	KindManifestSet      = "manifest.set"
	KindManifestPropose  = "manifest.propose"
	KindManifestApprove  = "manifest.approve"
	KindManifestApply    = "manifest.apply"
	KindManifestCancel   = "manifest.cancel"
	KindSVNUpdate        = "manifest.update-svn"
	KindSecretWrite      = "secret.write"
	KindRecovery         = "recovery"
	// KindActivations aggregates the activations of one workload in one hour: counts by
	// result, never one entry per activation.
	KindActivations = "activations"
)

// Hash is the SHA-256 of an encoded entry, in JSON 64 lower-case hex digits.
type Hash [32]byte

// IsZero reports whether h is all zeros: the Prev of a log's first entry.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h as 64 lower-case hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText returns h as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads exactly 64 lower-case hex digits: one spelling per hash, so that an
// entry has one encoding.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 || bytes.ContainsFunc(b, func(r rune) bool { return r >= 'A' && r <= 'F' }) {
		return fmt.Errorf("audit: hash: expected 64 lower-case hex digits, found %d bytes", len(b))
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("audit: hash: %w", err)
	}
	return nil
}

// Entry is one change of the Coordinator's state.
type Entry struct {
	// Seq numbers entries from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the change was made, in UTC by the Coordinator's clock.
	Time time.Time `json:"time"`
	// Kind says what changed: one of the Kind constants.
	Kind string `json:"kind"`
	// Actor is who made the change: a user of the manifest, or "coordinator".
	Actor string `json:"actor"`
	// Fields describe the change (a manifest hash, secret names, counts). Never a secret value.
	Fields map[string]string `json:"fields,omitempty"`
	// Prev is the hash of entry Seq-1, or zero for entry 1.
	Prev Hash `json:"prev"`
}

// hashPrefix separates entry hashes from every other SHA-256 the deployment computes.
const hashPrefix = "cloister-audit-entry-v1\n"

// Encode checks e and returns its one encoding: compact JSON with the fields in order and
// the field map sorted by name (as encoding/json writes them), time in UTC.
func (e *Entry) Encode() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode entry %d: %w", e.Seq, err)
	}
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("audit: entry %d is %d bytes encoded; expected at most %d", e.Seq, len(b), MaxEntrySize)
	}
	return b, nil
}

// HashOf returns the hash of an encoded entry.
func HashOf(encoded []byte) Hash {
	h := sha256.New()
	h.Write([]byte(hashPrefix))
	h.Write(encoded)
	var out Hash
	h.Sum(out[:0])
	return out
}

// ParseEntry decodes one encoded entry and requires it to be exactly its own encoding, so
// that the bytes hashed and the entry read are one thing.
func ParseEntry(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("audit: entry is %d bytes; expected at most %d", len(b), MaxEntrySize)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("audit: entry does not decode: %w", err)
	}
	again, err := e.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("audit: entry %d is not in its canonical encoding (compact JSON, fields in order, UTC time)", e.Seq)
	}
	return &e, nil
}

// check applies the rules of an entry: a sequence number, a UTC time, a kind and an actor,
// bounded printable names and values.
func (e *Entry) check() error {
	var errs []error
	if e.Seq == 0 {
		errs = append(errs, errors.New("seq: expected 1 or more, found 0"))
	}
	if e.Time.IsZero() || e.Time.Location() != time.UTC {
		errs = append(errs, fmt.Errorf("time %v: expected a UTC time", e.Time))
	}
	if e.Seq == 1 && !e.Prev.IsZero() {
		errs = append(errs, errors.New("prev: expected zero for entry 1"))
	}
	for _, s := range []struct{ name, v string }{{"kind", e.Kind}, {"actor", e.Actor}} {
		if why := checkName(s.v); why != "" {
			errs = append(errs, fmt.Errorf("%s %q: %s", s.name, s.v, why))
		}
	}
	if len(e.Fields) > MaxFields {
		errs = append(errs, fmt.Errorf("fields: %d; expected at most %d", len(e.Fields), MaxFields))
	}
	for k, v := range e.Fields {
		if why := checkName(k); why != "" {
			errs = append(errs, fmt.Errorf("field name %q: %s", k, why))
		}
		if len(v) > maxFieldValue || strings.ContainsFunc(v, isControl) {
			errs = append(errs, fmt.Errorf("field %q: expected at most %d printable bytes", k, maxFieldValue))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("audit: entry %d: %w", e.Seq, errors.Join(errs...))
	}
	return nil
}

// checkName returns why s is not a kind, actor or field name, or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxNameLen:
		return fmt.Sprintf("longer than %d bytes", maxNameLen)
	case strings.ContainsFunc(s, isControl):
		return "contains a control character"
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }
