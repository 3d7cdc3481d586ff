package recovery

import (
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/internal/shamir"
)

// Share is a share file: one holder's share of one split, encrypted to the holder.
type Share struct {
	Format     string `json:"format"`
	Deployment string `json:"deployment"`
	Generation string `json:"generation"`
	Holder     string `json:"holder"`
	Index      int    `json:"index"`
	Threshold  int    `json:"threshold"`
	Holders    int    `json:"holders"`
	// KeyDigest is the SHA-256 of the holder's public key (PKIX DER), hex.
	KeyDigest  string `json:"key_digest"`
	Algorithm  string `json:"algorithm"`
	Ciphertext []byte `json:"ciphertext"`
}

// Context is what a share's encryption binds: its deployment, generation, holder, index,
// threshold and number of holders, one "name value" line each after the format.
func (s *Share) Context() []byte {
	return fmt.Appendf(nil, "%s\ndeployment %s\ngeneration %s\nholder %s\nindex %d\nthreshold %d\nholders %d\n",
		ShareFormat, s.Deployment, s.Generation, s.Holder, s.Index, s.Threshold, s.Holders)
}

// ParseShare decodes and checks a share file.
func ParseShare(b []byte) (*Share, error) {
	var s Share
	if err := decodeStrict(b, &s, "share file"); err != nil {
		return nil, err
	}
	const what = "share file"
	switch {
	case s.Format != ShareFormat:
		return nil, malformed(what, "format %q, expected %q", bound(s.Format), ShareFormat)
	case !hex64.MatchString(s.Deployment):
		return nil, malformed(what, "deployment: expected 64 lower-case hex digits")
	case !hex32.MatchString(s.Generation):
		return nil, malformed(what, "generation: expected 32 lower-case hex digits")
	case !nameRE.MatchString(s.Holder):
		return nil, malformed(what, "holder: expected a name of 1-64 letters, digits, '.', '_' or '-', found %q", bound(s.Holder))
	case s.Holders < 1 || s.Holders > MaxHolders:
		return nil, malformed(what, "holders %d: expected 1 to %d", s.Holders, MaxHolders)
	case s.Index < 1 || s.Index > s.Holders:
		return nil, malformed(what, "index %d: expected 1 to %d", s.Index, s.Holders)
	case s.Threshold < 1 || s.Threshold > s.Holders:
		return nil, malformed(what, "threshold %d: expected 1 to %d", s.Threshold, s.Holders)
	case !hex64.MatchString(s.KeyDigest):
		return nil, malformed(what, "key_digest: expected 64 lower-case hex digits")
	case s.Algorithm != AlgRSAOAEP && s.Algorithm != AlgHPKE:
		return nil, malformed(what, "algorithm %q: expected %s or %s", bound(s.Algorithm), AlgRSAOAEP, AlgHPKE)
	case len(s.Ciphertext) == 0 || len(s.Ciphertext) > 1024:
		return nil, malformed(what, "ciphertext: expected 1 to 1024 bytes, found %d", len(s.Ciphertext))
	}
	return &s, nil
}

// Decrypt returns the share's y-values, decrypted with the holder's private key whose public
// key is pubDER. A key of another holder, or a share file whose context was changed, is an
// error that says so.
func (s *Share) Decrypt(priv PrivateKey, pubDER []byte) ([]byte, error) {
	if d := KeyDigest(pubDER); d != s.KeyDigest {
		return nil, fmt.Errorf("the share of holder %q is encrypted to key %s, and the key given is %s: use holder %q's own private key",
			s.Holder, short(s.KeyDigest), short(d), s.Holder)
	}
	y, err := decryptWith(priv, s.Algorithm, s.Context(), s.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("the share of holder %q does not decrypt with the key given (the file was changed, or is not this key's): %v", s.Holder, err)
	}
	if len(y) != KeySize {
		return nil, fmt.Errorf("the share of holder %q decrypts to %d bytes, expected %d", s.Holder, len(y), KeySize)
	}
	return y, nil
}

// HolderKey is a holder as the manifest names it: a name and a public key (PKIX DER).
type HolderKey struct {
	Name      string
	PublicKey []byte
}

// Split splits dataKey among holders (in the order given; holder i gets index i+1), any
// threshold of whom can recover it, for the deployment whose root's SHA-256 is deployment
// (hex). It returns the record to keep beside the sealed key (MAC made with dataKey) and one
// share file per holder, in the same order.
func Split(dataKey []byte, deployment string, holders []HolderKey, threshold int, now time.Time) (*Record, []*Share, error) {
	n := len(holders)
	switch {
	case len(dataKey) != KeySize:
		return nil, nil, fmt.Errorf("recovery: data key is %d bytes, expected %d", len(dataKey), KeySize)
	case n < 1 || n > MaxHolders:
		return nil, nil, fmt.Errorf("recovery: %d holders, expected 1 to %d", n, MaxHolders)
	case threshold < 1 || threshold > n:
		return nil, nil, fmt.Errorf("recovery: threshold %d, expected 1 to %d", threshold, n)
	}
	var ys [][]byte
	if threshold == 1 {
		for range holders {
			ys = append(ys, append([]byte(nil), dataKey...))
		}
	} else {
		parts, err := shamir.Split(dataKey, n, threshold)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range parts {
			ys = append(ys, p[1:])
		}
	}
	defer func() {
		for _, y := range ys {
			clear(y)
		}
	}()
	rec := &Record{Version: RecordVersion, Deployment: deployment, Generation: newGeneration(), Threshold: threshold, Created: now.UTC().Truncate(time.Second)}
	shares := make([]*Share, n)
	for i, h := range holders {
		pub, err := ParsePublicKey(h.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("recovery: holder %q: %w", h.Name, err)
		}
		rec.Holders = append(rec.Holders, Holder{Name: h.Name, Index: i + 1, PublicKey: h.PublicKey, Commitment: commit(rec.Generation, i+1, ys[i])})
		s := &Share{Format: ShareFormat, Deployment: deployment, Generation: rec.Generation, Holder: h.Name, Index: i + 1,
			Threshold: threshold, Holders: n, KeyDigest: KeyDigest(h.PublicKey)}
		if s.Algorithm, s.Ciphertext, err = encryptTo(pub, s.Context(), ys[i]); err != nil {
			return nil, nil, fmt.Errorf("recovery: encrypt the share of holder %q: %w", h.Name, err)
		}
		shares[i] = s
	}
	if err := rec.seal(dataKey); err != nil {
		return nil, nil, err
	}
	if err := rec.check(); err != nil {
		return nil, nil, err
	}
	return rec, shares, nil
}

// Combine recovers the data key from the y-values of at least the record's threshold of
// shares, by index. The result is to be checked: against the sealed state and the record's MAC.
func (r *Record) Combine(ys map[int][]byte) ([]byte, error) {
	if len(ys) < r.Threshold {
		return nil, fmt.Errorf("recovery: %d shares, the threshold is %d", len(ys), r.Threshold)
	}
	if r.Threshold == 1 {
		for _, y := range ys {
			return append([]byte(nil), y...), nil
		}
	}
	var parts []shamir.Share
	for i, y := range ys {
		parts = append(parts, append(shamir.Share{byte(i)}, y...))
	}
	key, err := shamir.Combine(parts)
	for _, p := range parts {
		clear(p)
	}
	return key, err
}

// SameHolders reports whether rec splits among exactly holders (same names, same keys, same
// order) with threshold: whether a manifest's recovery section is the split in force.
func (r *Record) SameHolders(holders []HolderKey, threshold int) bool {
	if r == nil || r.Threshold != threshold || len(r.Holders) != len(holders) {
		return false
	}
	for i, h := range holders {
		if r.Holders[i].Name != h.Name || subtle.ConstantTimeCompare(r.Holders[i].PublicKey, h.PublicKey) != 1 {
			return false
		}
	}
	return true
}
