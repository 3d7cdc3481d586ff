package manifest

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/sgx/verify"
)

// Duration bounds.
const (
	minWorkloadValidity = Duration(5 * time.Second) // under a minute for tests of renewal; each renewal is an activation
	maxWorkloadValidity = Duration(8760 * time.Hour)
	minSecretValidity   = Duration(time.Minute)
	maxSecretValidity   = Duration(87600 * time.Hour)
)

// check validates m and compiles its templates.
func (m *Manifest) check() (map[string]*compiledWorkload, error) {
	var ps problems
	m.checkSettings(&ps)
	m.checkPackages(&ps)
	m.checkSecrets(&ps)
	compiled := m.checkWorkloads(&ps)
	m.checkSecretNames(&ps)
	m.checkAllowedDNS(&ps)
	m.checkRoles(&ps)
	m.checkUsers(&ps)
	m.checkGovernance(&ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return compiled, nil
}

func (m *Manifest) checkSettings(ps *problems) {
	if td := m.Settings.TrustDomain; m.has("$.settings.trust_domain", td != "") {
		if err := checkTrustDomain(td); err != nil {
			ps.add("$.settings.trust_domain", "%v", err)
		}
	}
	if v := m.Settings.WorkloadCertificateValidity; m.has("$.settings.workload_certificate_validity", v != 0) {
		checkDuration(ps, "$.settings.workload_certificate_validity", v, minWorkloadValidity, maxWorkloadValidity)
	}
}

func checkDuration(ps *problems, p string, v, lo, hi Duration) {
	if v < lo || v > hi {
		ps.add(p, "expected a duration from %s to %s, found %s", short(lo), short(hi), v)
	}
}

// short formats a bound such as 8760h without the trailing "0m0s".
func short(d Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

func (m *Manifest) checkPackages(ps *problems) {
	for _, name := range sortedKeys(m.Packages) {
		pkg, p := m.Packages[name], keyPath("$.packages", name)
		if err := checkName("package", name); err != nil {
			ps.add(p, "%v", err)
		}
		hasEnclave := m.has(p+".mrenclave", pkg.MREnclave != "")
		hasSigner := m.has(p+".mrsigner", pkg.MRSigner != "")
		switch {
		case hasEnclave && hasSigner:
			ps.add(p, "expected either mrenclave or mrsigner, found both")
		case hasEnclave:
			if err := checkHex64(pkg.MREnclave); err != nil {
				ps.add(p+".mrenclave", "%v", err)
			}
			for _, f := range []struct {
				key string
				v   *uint16
			}{{"isvprodid", pkg.ISVProdID}, {"min_isvsvn", pkg.MinISVSVN}} {
				if f.v != nil {
					ps.add(p+"."+f.key, "expected %s only with mrsigner, found it with mrenclave (which already names one exact enclave)", f.key)
				}
			}
		case hasSigner:
			if err := checkHex64(pkg.MRSigner); err != nil {
				ps.add(p+".mrsigner", "%v", err)
			}
			if pkg.ISVProdID == nil {
				ps.add(p+".isvprodid", "expected the product ID (0 to 65535) that goes with mrsigner, found none")
			}
			if pkg.MinISVSVN == nil {
				ps.add(p+".min_isvsvn", "expected the lowest accepted security version (0 to 65535) that goes with mrsigner, found none")
			}
		default:
			ps.add(p, "expected an enclave identity, mrenclave or mrsigner, found neither")
		}
		checkTCBStatuses(ps, p+".tcb_statuses", pkg.TCBStatuses)
		if pkg.Advisories != nil {
			checkList(ps, p+".advisories", "advisory ID", *pkg.Advisories, func(id string) error {
				if !advisoryID.MatchString(id) {
					return fmt.Errorf("expected an Intel advisory ID such as \"INTEL-SA-00615\", found %s", quote(id))
				}
				return nil
			})
		}
	}
}

func checkTCBStatuses(ps *problems, p string, statuses []verify.TCBStatus) {
	if statuses != nil && len(statuses) == 0 {
		ps.add(p, "expected at least one TCB status, found an empty list, which no platform satisfies; leave the key out for the default %v", verify.DefaultTCBStatuses)
		return
	}
	names := make([]string, len(statuses))
	for i, s := range statuses {
		names[i] = string(s)
	}
	checkList(ps, p, "TCB status", names, func(s string) error {
		_, err := verify.ParseTCBStatus(s)
		return err
	})
}

// checkList checks every element of a list with check and rejects duplicates.
func checkList(ps *problems, p, what string, list []string, check func(string) error) {
	seen := make(map[string]struct{}, len(list))
	for i, v := range list {
		if check != nil {
			if err := check(v); err != nil {
				ps.add(indexPath(p, i), "%v", err)
				continue
			}
		}
		if _, dup := seen[v]; dup {
			ps.add(indexPath(p, i), "expected each %s once, found %s again", what, quote(v))
		}
		seen[v] = struct{}{}
	}
}

func (m *Manifest) checkRoles(ps *problems) {
	for _, name := range sortedKeys(m.Roles) {
		role, p := m.Roles[name], keyPath("$.roles", name)
		if err := checkName("role", name); err != nil {
			ps.add(p, "%v", err)
		}
		actions := make([]string, len(role.Actions))
		for i, a := range role.Actions {
			actions[i] = string(a)
		}
		if len(actions) == 0 {
			ps.add(p+".actions", "expected at least one action, found none")
		}
		switch role.Resource {
		case ResourceSecrets:
			m.checkSecretsRole(ps, p, role, actions)
		case ResourceManifest:
			if m.has(p+".names", len(role.Names) > 0) {
				ps.add(p+".names", "expected no names for a manifest role (it covers the manifest), found the key")
			}
			checkList(ps, p+".actions", "action", actions, enumCheck("action for the manifest", Update))
		case ResourcePackages:
			if len(role.Names) == 0 {
				ps.add(p+".names", "expected the names of the packages the role covers, found none")
			}
			checkList(ps, p+".names", "package", role.Names, func(n string) error {
				if _, ok := m.Packages[n]; !ok {
					return fmt.Errorf("unknown package %s; defined packages: %s", quote(n), nameList(sortedKeys(m.Packages)))
				}
				return nil
			})
			checkList(ps, p+".actions", "action", actions, enumCheck("action for packages", Update))
		case ResourceAudit:
			if m.has(p+".names", len(role.Names) > 0) {
				ps.add(p+".names", "expected no names for an audit role (it covers the audit log), found the key")
			}
			checkList(ps, p+".actions", "action", actions, enumCheck("action for the audit log", Read))
		default:
			ps.add(p+".resource", "expected %q, %q, %q or %q, found %s", ResourceSecrets, ResourceManifest, ResourcePackages, ResourceAudit, quote(string(role.Resource)))
		}
	}
}

func (m *Manifest) checkSecretsRole(ps *problems, p string, role Role, actions []string) {
	if len(role.Names) == 0 {
		ps.add(p+".names", "expected the names of the secrets the role covers, found none")
	}
	checkList(ps, p+".names", "secret", role.Names, func(n string) error {
		if _, ok := m.Secrets[n]; !ok {
			return fmt.Errorf("unknown secret %s; defined secrets: %s", quote(n), nameList(sortedKeys(m.Secrets)))
		}
		return nil
	})
	checkList(ps, p+".actions", "action", actions, enumCheck("action for secrets", Read, Write))
	if i := slices.Index(role.Actions, Write); i >= 0 {
		var bad []string
		for _, n := range role.Names {
			if s, ok := m.Secrets[n]; ok && s.Type != UserDefined {
				bad = append(bad, fmt.Sprintf("%s (%s)", n, s.Type))
			}
		}
		if len(bad) > 0 {
			ps.add(indexPath(p+".actions", i), "expected only user-defined secrets with action \"write\", found %s", nameList(bad))
		}
	}
}

// enumCheck returns a check that accepts only the given values.
func enumCheck[T ~string](what string, values ...T) func(string) error {
	return func(s string) error {
		if slices.Contains(values, T(s)) {
			return nil
		}
		return fmt.Errorf("expected %s %v, found %s", what, values, quote(s))
	}
}

func (m *Manifest) checkUsers(ps *problems) {
	owner := make(map[string]string) // DER certificate -> user name
	for _, name := range sortedKeys(m.Users) {
		user, p := m.Users[name], keyPath("$.users", name)
		if err := checkName("user", name); err != nil {
			ps.add(p, "%v", err)
		}
		if cert, err := user.ParseCertificate(); err != nil {
			ps.add(p+".certificate", "%v", err)
		} else if other, dup := owner[string(cert.Raw)]; dup {
			ps.add(p+".certificate", "expected a certificate of this user's own, found the certificate of user %s", quote(other))
		} else {
			owner[string(cert.Raw)] = name
		}
		checkList(ps, p+".roles", "role", user.Roles, func(r string) error {
			if _, ok := m.Roles[r]; !ok {
				return fmt.Errorf("unknown role %s; defined roles: %s", quote(r), nameList(sortedKeys(m.Roles)))
			}
			return nil
		})
	}
}

// ParseCertificate parses u.Certificate: exactly one PEM block of type CERTIFICATE holding
// an X.509 certificate, with nothing but white space around it. It does not check the
// validity period.
func (u User) ParseCertificate() (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(u.Certificate))
	switch {
	case strings.TrimSpace(u.Certificate) == "":
		return nil, errors.New("expected the user's PEM certificate, found none")
	case block == nil:
		return nil, errors.New("expected a PEM \"CERTIFICATE\" block, found no PEM data")
	case block.Type != "CERTIFICATE":
		return nil, fmt.Errorf("expected a PEM \"CERTIFICATE\" block, found a %s block", quote(block.Type))
	case strings.TrimSpace(string(rest)) != "":
		return nil, errors.New("expected one PEM certificate, found more data after it")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("expected an X.509 certificate, found one that does not parse: %w", err)
	}
	return cert, nil
}

// sortedKeys returns the keys of a string-keyed map in increasing order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// inRange reports whether lo <= v <= hi.
func inRange[T cmp.Ordered](v, lo, hi T) bool { return lo <= v && v <= hi }

// maxActivations bounds Workload.MaxActivations so it means the same on every platform.
const maxActivations = math.MaxInt32
