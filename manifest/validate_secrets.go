package manifest

import (
	"net/netip"
	"slices"
	"unicode/utf8"
)

// secretFields lists, in document order, the optional fields of a secret with the types
// they apply to and whether a Secret sets them.
var secretFields = []struct {
	key     string
	types   []SecretType
	present func(Secret) bool
}{
	{"size", []SecretType{SymmetricKey}, func(s Secret) bool { return s.Size != 0 }},
	{"algorithm", []SecretType{Certificate}, func(s Secret) bool { return s.Algorithm != "" }},
	{"validity", []SecretType{Certificate}, func(s Secret) bool { return s.Validity != 0 }},
	{"common_name", []SecretType{Certificate}, func(s Secret) bool { return s.CommonName != "" }},
	{"dns", []SecretType{Certificate}, func(s Secret) bool { return len(s.DNS) > 0 }},
	{"ip", []SecretType{Certificate}, func(s Secret) bool { return len(s.IP) > 0 }},
	{"self_signed", []SecretType{Certificate}, func(s Secret) bool { return s.SelfSigned }},
	{"is_ca", []SecretType{Certificate}, func(s Secret) bool { return s.IsCA }},
	{"value", []SecretType{Plain}, func(s Secret) bool { return s.Value != "" }},
	{"max_size", []SecretType{UserDefined}, func(s Secret) bool { return s.MaxSize != 0 }},
	{"per_instance", []SecretType{SymmetricKey, Certificate}, func(s Secret) bool { return s.PerInstance }},
}

// maxCommonName is the X.509 upper bound on a common name, in bytes.
const maxCommonName = 64

func (m *Manifest) checkSecrets(ps *problems) {
	for _, name := range sortedKeys(m.Secrets) {
		s, p := m.Secrets[name], keyPath("$.secrets", name)
		if err := checkName("secret", name); err != nil {
			ps.add(p, "%v", err)
		}
		if !slices.Contains(SecretTypes, s.Type) {
			ps.add(p+".type", "expected a secret type, one of %v, found %s", SecretTypes, quote(string(s.Type)))
			continue
		}
		for _, f := range secretFields {
			if m.has(p+"."+f.key, f.present(s)) && !slices.Contains(f.types, s.Type) {
				ps.add(p+"."+f.key, "expected no %s for a %s secret, found one; %s applies to %v secrets", f.key, s.Type, f.key, f.types)
			}
		}
		switch s.Type {
		case SymmetricKey:
			if !m.has(p+".size", s.Size != 0) {
				ps.add(p+".size", "expected the key size in bits (a multiple of 8 from 128 to 4096), found none")
			} else if !inRange(s.Size, 128, 4096) || s.Size%8 != 0 {
				ps.add(p+".size", "expected a key size in bits that is a multiple of 8 from 128 to 4096, found %d", s.Size)
			}
		case Certificate:
			m.checkCertificateSecret(ps, p, s)
		case Plain:
			if s.Value == "" {
				ps.add(p+".value", "expected a non-empty value for a plain secret, found none")
			}
		case UserDefined:
			if m.has(p+".max_size", s.MaxSize != 0) && !inRange(s.MaxSize, 1, MaxUserDefinedSize) {
				ps.add(p+".max_size", "expected a size in bytes from 1 to %d, found %d", MaxUserDefinedSize, s.MaxSize)
			}
		}
	}
}

func (m *Manifest) checkCertificateSecret(ps *problems, p string, s Secret) {
	if m.has(p+".algorithm", s.Algorithm != "") && !slices.Contains(KeyAlgorithms, s.Algorithm) {
		ps.add(p+".algorithm", "expected one of %v, found %s", KeyAlgorithms, quote(string(s.Algorithm)))
	}
	if m.has(p+".validity", s.Validity != 0) {
		checkDuration(ps, p+".validity", s.Validity, minSecretValidity, maxSecretValidity)
	}
	if n := utf8.RuneCountInString(s.CommonName); m.has(p+".common_name", n > 0) && !inRange(n, 1, maxCommonName) {
		ps.add(p+".common_name", "expected a common name of 1 to %d characters, found %d", maxCommonName, n)
	}
	checkList(ps, p+".dns", "DNS name", s.DNS, checkDNSName)
	checkIPs(ps, p+".ip", s.IP, nil)
	if s.IsCA && !s.SelfSigned {
		// Issued by the deployment's CA, a CA secret could sign certificates that every
		// workload trusts, for any workload's names: whoever may read it could impersonate
		// them all.
		ps.add(p+".is_ca", "expected self_signed with is_ca: a CA secret issued by the deployment CA could sign certificates every workload trusts")
	}
}

// checkIPs checks a list of IP addresses and rejects duplicates. For each valid address it
// calls found, if not nil, with its path.
func checkIPs(ps *problems, p string, ips []string, found func(p string, a netip.Addr)) {
	seen := make(map[netip.Addr]struct{}, len(ips))
	for i, s := range ips {
		a, err := checkIP(s)
		if err != nil {
			ps.add(indexPath(p, i), "%v", err)
			continue
		}
		if _, dup := seen[a]; dup {
			ps.add(indexPath(p, i), "expected each IP address once, found %s again", a)
			continue
		}
		seen[a] = struct{}{}
		if found != nil {
			found(indexPath(p, i), a)
		}
	}
}
