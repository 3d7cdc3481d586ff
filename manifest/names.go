package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
)

// Name rules. Package, user and role names follow the general rule; secret and workload
// names have stricter rules of their own because they appear inside templates and in DNS
// names and SPIFFE IDs.
var (
	// generalName: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter
	// or digit.
	generalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// secretName: a Go template field name, 1 to 64 bytes.
	secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// workloadName: a DNS label of lowercase letters, digits and '-'.
	workloadName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// envName: a POSIX shell variable name.
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// hex64: 32 bytes as lowercase hex.
	hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// advisoryID: an Intel security advisory ID.
	advisoryID = regexp.MustCompile(`^INTEL-SA-[0-9]{5}$`)
	// trustDomainRE: the characters the SPIFFE ID specification allows in a trust domain.
	trustDomainRE = regexp.MustCompile(`^[a-z0-9._-]+$`)
	// dnsLabel: one label of a DNS name, lowercase.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

const (
	generalNameRule  = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
	secretNameRule   = "1 to 64 ASCII letters, digits or '_', not starting with a digit"
	workloadNameRule = "1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
	// maxEnvName bounds environment variable names, in bytes.
	maxEnvName = 256
	// maxFilePath bounds file paths, in bytes (Linux PATH_MAX).
	maxFilePath = 4096
	// maxTrustDomain bounds trust domains, in bytes, as the SPIFFE ID specification does.
	maxTrustDomain = 255
	// reservedEnvPrefix starts the launcher's own settings: enclave.EnvPrefix, which this
	// package may not import (see TestDependencies); enclave's TestReservedNames keeps them equal.
	reservedEnvPrefix = "CLOISTER_"
	// reservedDir holds the launcher and the enclave manifest inside every image:
	// enclave.ReservedDir, kept equal the same way.
	reservedDir = "/cloister"
)

// checkName reports whether name of the given kind ("package", "user", ...) follows its rule.
func checkName(kind, name string) error {
	re, rule := generalName, generalNameRule
	switch kind {
	case "secret":
		re, rule = secretName, secretNameRule
	case "workload":
		re, rule = workloadName, workloadNameRule
	}
	if !re.MatchString(name) {
		return fmt.Errorf("invalid %s name %s: expected %s", kind, quote(name), rule)
	}
	return nil
}

func checkTrustDomain(td string) error {
	switch {
	case len(td) > maxTrustDomain:
		return fmt.Errorf("expected a trust domain of at most %d bytes, found %d bytes", maxTrustDomain, len(td))
	case !trustDomainRE.MatchString(td):
		return fmt.Errorf("expected a SPIFFE trust domain of lowercase letters, digits, '.', '-' and '_' (such as \"example.org\"), found %s", quote(td))
	}
	return nil
}

func checkHex64(s string) error {
	switch {
	case !hex64.MatchString(s):
		return fmt.Errorf("expected 64 lowercase hex digits, found %s (%d characters)", quote(s), len(s))
	case strings.Trim(s, "0") == "":
		return errors.New("expected a measurement, found all zeros (a placeholder?); use the value the image converter printed")
	}
	return nil
}

// checkDNSName checks a DNS subject alternative name: lowercase labels of letters, digits
// and '-', at most 253 bytes, the leftmost label optionally "*".
func checkDNSName(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("expected a DNS name, found IP address %s; list it under \"ip\"", quote(s))
	}
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("expected a DNS name of 1 to 253 bytes, found %d bytes", len(s))
	}
	for i, label := range strings.Split(s, ".") {
		if i == 0 && label == "*" && s != "*" {
			continue
		}
		if !dnsLabel.MatchString(label) {
			return fmt.Errorf("expected a lowercase DNS name (labels of 1 to 63 letters, digits or '-', not starting or ending with '-'), found %s", quote(s))
		}
	}
	return nil
}

// checkIP parses an IP subject alternative name.
func checkIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, fmt.Errorf("expected an IPv4 or IPv6 address, found %s", quote(s))
	case a.Zone() != "":
		return a, fmt.Errorf("expected an IP address without zone, found %s", quote(s))
	case a.IsUnspecified():
		return a, fmt.Errorf("expected a specific IP address, found the unspecified address %s", quote(s))
	}
	return a.Unmap(), nil
}

func checkEnvName(s string) error {
	switch {
	case len(s) > maxEnvName || !envName.MatchString(s):
		return fmt.Errorf("expected an environment variable name of at most %d ASCII letters, digits or '_', not starting with a digit, found %s", maxEnvName, quote(s))
	case strings.HasPrefix(s, reservedEnvPrefix):
		return fmt.Errorf("environment variable %s is reserved: names starting with %s configure the launcher", quote(s), reservedEnvPrefix)
	}
	return nil
}

func checkFilePath(s string) error {
	switch {
	case len(s) > maxFilePath:
		return fmt.Errorf("expected a path of at most %d bytes, found %d bytes", maxFilePath, len(s))
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("expected a file path, found a NUL byte in it")
	case !path.IsAbs(s) || path.Clean(s) != s || s == "/":
		return fmt.Errorf("expected an absolute, clean file path such as \"/etc/app/config.json\", found %s", quote(s))
	case s == reservedDir || strings.HasPrefix(s, reservedDir+"/"):
		return fmt.Errorf("path %s is reserved: %s holds the launcher and the enclave manifest", quote(s), reservedDir)
	}
	return nil
}
