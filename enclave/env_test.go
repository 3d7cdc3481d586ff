package enclave_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/manifest"
)

// TestReservedNames keeps package manifest, which may not import this package, refusing exactly
// the launcher's environment prefix and the converter's directory defined here: a deployment
// manifest must not reconfigure the launcher or overwrite its files.
func TestReservedNames(t *testing.T) {
	for _, name := range []string{enclave.EnvCoordinator, enclave.EnvWorkload, enclave.EnvInstance, enclave.EnvTEE,
		enclave.EnvSimDir, enclave.EnvEnclaveManifest, enclave.EnvRetryTimeout, enclave.EnvDNSNames} {
		if !strings.HasPrefix(name, enclave.EnvPrefix) {
			t.Errorf("launcher setting %s does not start with %s", name, enclave.EnvPrefix)
		}
	}
	for _, p := range []string{enclave.LauncherPath, enclave.ManifestPath, enclave.GramineManifestPath} {
		if !strings.HasPrefix(p, enclave.ReservedDir+"/") {
			t.Errorf("converter file %s is outside %s", p, enclave.ReservedDir)
		}
	}

	env := strings.TrimSuffix(enclave.EnvPrefix, "_")
	parse := func(envName, file string) error {
		_, err := manifest.Parse(fmt.Appendf(nil, `{"packages": {"p": {"mrenclave": %q}},
 "workloads": {"w": {"package": "p", "env": {%q: "x"}, "files": {%q: "x"}}}}`, strings.Repeat("01", 32), envName, file))
		return err
	}
	if err := parse(env+"X", enclave.ReservedDir+"x/f"); err != nil {
		t.Fatalf("names next to the reserved ones refused: %v", err)
	}
	err := parse(enclave.EnvCoordinator, enclave.ManifestPath)
	for _, want := range []string{
		fmt.Sprintf("names starting with %s configure the launcher", enclave.EnvPrefix),
		fmt.Sprintf("path %q is reserved", enclave.ManifestPath),
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("manifest.Parse with %s and %s: %v; want an error saying %s", enclave.EnvCoordinator, enclave.ManifestPath, err, want)
		}
	}
}
