package launcher

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cloister-dev/cloister/manifest"
)

// maxDNSNamesEnv bounds the length of EnvDNSNames: MaxRequestedDNS names of the longest length
// and their commas.
const maxDNSNamesEnv = manifest.MaxRequestedDNS * (manifest.MaxRequestedDNSLen + 1)

// dnsLabel is one label of a requested DNS name: lowercase, as the manifest writes names.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// parseDNSNames reads EnvDNSNames: comma-separated lowercase DNS names without wildcards, at
// most manifest.MaxRequestedDNS of at most manifest.MaxRequestedDNSLen bytes, each once
// (spaces around commas are ignored). The value comes from the host: its form is checked here
// so that a mistake is reported before attesting, and whether the workload may have each name
// is decided by the Coordinator (manifest.CheckRequestedDNS).
func parseDNSNames(v string) ([]string, error) {
	if len(v) > maxDNSNamesEnv {
		return nil, fmt.Errorf("expected at most %d bytes of comma-separated DNS names, found %d", maxDNSNamesEnv, len(v))
	}
	parts := strings.Split(v, ",")
	if len(parts) > manifest.MaxRequestedDNS {
		return nil, fmt.Errorf("expected at most %d comma-separated DNS names, found %d", manifest.MaxRequestedDNS, len(parts))
	}
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		n := strings.TrimSpace(p)
		if err := checkRequestName(n); err != nil {
			return nil, fmt.Errorf("name %d: %w", i+1, err)
		}
		for _, o := range out {
			if o == n {
				return nil, fmt.Errorf("name %d: expected each DNS name once, found %q again", i+1, n)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func checkRequestName(n string) error {
	if n == "" || len(n) > manifest.MaxRequestedDNSLen {
		return fmt.Errorf("expected a DNS name of 1 to %d bytes, found %d bytes", manifest.MaxRequestedDNSLen, len(n))
	}
	labels := strings.Split(n, ".")
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return fmt.Errorf("expected a lowercase DNS name without wildcard (labels of 1 to 63 letters, digits or '-', not starting or ending with '-'), found %q", n)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("expected a DNS name, found %q, which reads as an IP address", n)
	}
	return nil
}
