package manifest

import (
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Governance bounds.
const (
	// MaxRecoveryKeys bounds governance.recovery.keys: shares are numbered by one byte.
	MaxRecoveryKeys = 255
	// RecoveryRSABits is the size of every RSA recovery key.
	RecoveryRSABits = 3072

	minPendingUpdateExpiry = Duration(time.Minute)
	maxPendingUpdateExpiry = Duration(720 * time.Hour)
)

// Updaters returns, sorted, the users whose roles grant update on the manifest.
func (m *Manifest) Updaters() []string {
	var out []string
	for _, name := range sortedKeys(m.Users) {
		if m.Allowed(name, ResourceManifest, Update, "") {
			out = append(out, name)
		}
	}
	return out
}

// Allowed reports whether user holds a role of m that permits action on resource; for
// secrets and packages roles, on the secret or package called name.
func (m *Manifest) Allowed(user string, resource Resource, action Action, name string) bool {
	u, ok := m.Users[user]
	if !ok {
		return false
	}
	for _, rn := range u.Roles {
		r := m.Roles[rn]
		if r.Resource != resource || !slices.Contains(r.Actions, action) {
			continue
		}
		if resource != ResourceManifest && resource != ResourceAudit && !slices.Contains(r.Names, name) {
			continue
		}
		return true
	}
	return false
}

func (m *Manifest) checkGovernance(ps *problems) {
	g := m.Governance
	if m.has("$.governance.update_threshold", g.UpdateThreshold != 0) {
		n := len(m.Updaters())
		switch {
		case g.UpdateThreshold < 1:
			ps.add("$.governance.update_threshold", "expected at least 1 approval, found %d", g.UpdateThreshold)
		case g.UpdateThreshold > max(n, 1): // 1 with no updater: a manifest nobody may change
			ps.add("$.governance.update_threshold", "expected at most the number of users whose roles grant update on the manifest (%d: %s), found %d; nobody could ever update the manifest",
				n, nameList(m.Updaters()), g.UpdateThreshold)
		}
	}
	if v := g.PendingUpdateExpiry; m.has("$.governance.pending_update_expiry", v != 0) {
		checkDuration(ps, "$.governance.pending_update_expiry", v, minPendingUpdateExpiry, maxPendingUpdateExpiry)
	}
	if g.Recovery != nil {
		m.checkRecovery(ps, g.Recovery)
	}
}

func (m *Manifest) checkRecovery(ps *problems, r *Recovery) {
	const p = "$.governance.recovery"
	n := len(r.Keys)
	switch {
	case n < 1 || n > MaxRecoveryKeys:
		ps.add(p+".keys", "expected 1 to %d recovery keys, found %d", MaxRecoveryKeys, n)
	case r.Threshold < 1 || r.Threshold > n:
		ps.add(p+".threshold", "expected a threshold from 1 to the number of keys (%d), found %d", n, r.Threshold)
	}
	owner := map[string]string{} // DER public key -> holder
	for _, name := range sortedKeys(r.Keys) {
		kp := keyPath(p+".keys", name)
		if err := checkName("recovery key holder", name); err != nil {
			ps.add(kp, "%v", err)
		}
		_, der, err := parseRecoveryKey(r.Keys[name])
		if err != nil {
			ps.add(kp, "%v", err)
			continue
		}
		if other, dup := owner[string(der)]; dup {
			ps.add(kp, "expected a key of this holder's own, found the key of holder %s", quote(other))
			continue
		}
		owner[string(der)] = name
	}
}

// ParseRecoveryKey parses a recovery public key as governance.recovery.keys holds it: one PEM
// "PUBLIC KEY" block (PKIX) with nothing but white space around it, holding an RSA key of
// [RecoveryRSABits] bits (*rsa.PublicKey) or an X25519 key (*ecdh.PublicKey).
func ParseRecoveryKey(s string) (any, error) {
	k, _, err := parseRecoveryKey(s)
	return k, err
}

func parseRecoveryKey(s string) (any, []byte, error) {
	block, rest := pem.Decode([]byte(s))
	switch {
	case strings.TrimSpace(s) == "":
		return nil, nil, errors.New("expected the holder's PEM public key, found none")
	case block == nil:
		return nil, nil, errors.New("expected a PEM \"PUBLIC KEY\" block, found no PEM data")
	case block.Type != "PUBLIC KEY":
		return nil, nil, fmt.Errorf("expected a PEM \"PUBLIC KEY\" block, found a %s block", quote(block.Type))
	case strings.TrimSpace(string(rest)) != "":
		return nil, nil, errors.New("expected one PEM public key, found more data after it")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("expected an RSA-3072 or X25519 public key, found one that does not parse: %v", err)
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits != RecoveryRSABits {
			return nil, nil, fmt.Errorf("expected an RSA key of %d bits, found %d bits", RecoveryRSABits, bits)
		}
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.X25519() {
			return nil, nil, fmt.Errorf("expected an RSA-3072 or X25519 public key, found an ECDH key on %v", k.Curve())
		}
	default:
		return nil, nil, fmt.Errorf("expected an RSA-3072 or X25519 public key, found a %T", k)
	}
	return k, block.Bytes, nil
}

// AuditRestricted reports whether a role of m covers the audit log: then only users holding
// such a role may read it ([Manifest.Allowed] with [ResourceAudit] and [Read]); otherwise
// every user of m may.
func (m *Manifest) AuditRestricted() bool {
	for _, r := range m.Roles {
		if r.Resource == ResourceAudit {
			return true
		}
	}
	return false
}

// RecoveryHolders returns the names of the recovery key holders, sorted; none without recovery.
func (m *Manifest) RecoveryHolders() []string {
	if m.Governance.Recovery == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(m.Governance.Recovery.Keys))
}
