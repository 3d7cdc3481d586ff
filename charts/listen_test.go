package charts

import (
	"net"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestListenAddresses: every address the chart renders into a flag splits with
// net.SplitHostPort into the configured host and port, IPv6 ones in brackets ("::" once gave
// --peer-addr=:::2002, which the Coordinator refused); 0.0.0.0 leaves the peer port on every
// address, as the APIs.
func TestListenAddresses(t *testing.T) {
	for _, tc := range []struct {
		listen, address string
		want            map[string]string // flag → value
	}{
		{"0.0.0.0", "", map[string]string{"--client-addr": "0.0.0.0:4433", "--mesh-addr": "0.0.0.0:2001", "--peer-addr": ":2002"}},
		{"127.0.0.1", "127.0.0.1", map[string]string{"--client-addr": "127.0.0.1:4433", "--mesh-addr": "127.0.0.1:2001", "--peer-addr": "127.0.0.1:2002",
			"--coordinator": "127.0.0.1:2001", "--coordinator-client-api": "127.0.0.1:4433"}},
		{"::", "", map[string]string{"--client-addr": "[::]:4433", "--mesh-addr": "[::]:2001", "--peer-addr": "[::]:2002"}},
		{"::1", "::1", map[string]string{"--client-addr": "[::1]:4433", "--mesh-addr": "[::1]:2001", "--peer-addr": "[::1]:2002",
			"--coordinator": "[::1]:2001", "--coordinator-client-api": "[::1]:4433"}},
		{"fd00::a:1", "[fd00::a:1]", map[string]string{"--client-addr": "[fd00::a:1]:4433", "--coordinator": "[fd00::a:1]:2001"}},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			vals := haValues(t, 1, map[string]any{"listenAddress": tc.listen, "address": tc.address})
			objs, _ := render(t, vals)
			args := map[string]string{}
			for _, key := range []string{"Deployment/cloister", "Deployment/cloister-injector"} {
				for _, a := range get[appsv1.Deployment](t, objs, key).Spec.Template.Spec.Containers[0].Args {
					if k, v, ok := strings.Cut(a, "="); ok {
						args[k] = v
					}
				}
			}
			for flag, want := range tc.want {
				got := args[flag]
				if got != want {
					t.Errorf("listenAddress %q, address %q: %s=%s; want %s", tc.listen, tc.address, flag, got, want)
					continue
				}
				host, _, err := net.SplitHostPort(got)
				if err != nil {
					t.Errorf("%s=%s does not split into host and port: %v", flag, got, err)
				} else if host != "" && net.ParseIP(host) == nil {
					t.Errorf("%s=%s: host %q is no IP address", flag, got, host)
				}
			}
		})
	}
}
