package launcher

import (
	"fmt"
	"strconv"
	"strings"
)

// Bounds of EnvDNSNames: maxRequestedDNS and maxRequestedDNSLen (the
// launcher may not import package manifest; a test keeps them equal), and the whole value.
const (
	maxRequestedDNS    = 32
	maxRequestedDNSLen = 253
	maxDNSNamesEnv     = maxRequestedDNS * (maxRequestedDNSLen + 1)
)

// isDNSLabel says whether l is one label of a requested DNS name, lowercase as the manifest
// writes names: ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$. Written out rather than as a regexp:
// package regexp would be linked into the launcher and its patterns compiled at every start
// (see TestDependencies).
func isDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseDNSNames reads EnvDNSNames: comma-separated lowercase DNS names without wildcards, at
// most maxRequestedDNS of at most maxRequestedDNSLen bytes, each once
// (spaces around commas are ignored). The value comes from the host: its form is checked here
// so that a mistake is reported before attesting, and whether the workload may have each name
// is decided by the Coordinator (manifest.CheckRequestedDNS).
func parseDNSNames(v string) ([]string, error) {
	if len(v) > maxDNSNamesEnv {
		return nil, fmt.Errorf("expected at most %d bytes of comma-separated DNS names, found %d", maxDNSNamesEnv, len(v))
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxRequestedDNS {
		return nil, fmt.Errorf("expected at most %d comma-separated DNS names, found %d", maxRequestedDNS, len(parts))
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
	if n == "" || len(n) > maxRequestedDNSLen {
		return fmt.Errorf("expected a DNS name of 1 to %d bytes, found %d bytes", maxRequestedDNSLen, len(n))
	}
	labels := strings.Split(n, ".")
	for _, l := range labels {
		if !isDNSLabel(l) {
			return fmt.Errorf("expected a lowercase DNS name without wildcard (labels of 1 to 63 letters, digits or '-', not starting or ending with '-'), found %q", n)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" || readsAsNumbers(labels) {
		return fmt.Errorf("expected a DNS name, found %q, which reads as an IP address", n)
	}
	return nil
}

// readsAsNumbers reports whether a resolver or URL parser could read labels as an IPv4
// address: one to four numbers, in any base inet_aton or Go accepts ("0x1f", "017", "0b1").
func readsAsNumbers(labels []string) bool {
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		if _, err := strconv.ParseUint(l, 0, 64); err != nil {
			if _, err := strconv.ParseUint(l, 10, 64); err != nil {
				return false
			}
		}
	}
	return true
}
