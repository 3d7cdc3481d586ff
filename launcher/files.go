package launcher

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// checkDelivered refuses delivered files that would change what the next start verifies: a
// trusted file of the enclave manifest (replaced in the container's layer, it would no longer
// match the manifest and every restart would be refused), a protected file's path or encrypted
// copy, anything below the protected files' plaintext directory or the delivered files' own
// directory, or inside an encrypted volume (the application's data, seeded once). Excluded
// paths may be delivered. It writes nothing; call it before writeFiles.
func checkDelivered(m *enclave.Manifest, files map[string][]byte) error {
	trusted := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		trusted[f.Path] = true
	}
	protected := make(map[string]bool, 2*len(m.ProtectedFiles))
	for _, f := range m.ProtectedFiles {
		protected[f.Path] = true
		protected[m.EncryptedPath(f.Path)] = true
	}
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(files)) {
		switch {
		case trusted[p]:
			errs = append(errs, fmt.Errorf("delivered file %s: expected a path the image does not measure, found a trusted file of the enclave manifest; "+
				"replacing it would make every restart fail its check (deliver it elsewhere, or convert the image with --exclude %s)", p, p))
		case protected[p]:
			errs = append(errs, fmt.Errorf("delivered file %s: expected a path the image does not measure, found a protected file", p))
		case m.PlaintextDir != "" && strings.HasPrefix(p, m.PlaintextDir+"/"):
			errs = append(errs, fmt.Errorf("delivered file %s: inside %s, where the launcher decrypts protected files", p, m.PlaintextDir))
		case p == DeliveredDir || strings.HasPrefix(p, DeliveredDir+"/"):
			errs = append(errs, fmt.Errorf("delivered file %s: inside %s, where the launcher keeps the delivered files' copies; deliver it to its own path", p, DeliveredDir))
		case volumeOf(m, p) != "":
			errs = append(errs, fmt.Errorf("delivered file %s: inside the encrypted volume %s, which holds the application's data; deliver it elsewhere", p, volumeOf(m, p)))
		}
	}
	return errors.Join(errs...)
}

// volumeOf returns the encrypted volume of m that holds p, or "".
func volumeOf(m *enclave.Manifest, p string) string {
	for _, v := range m.Volumes {
		if p == v.Path || strings.HasPrefix(p, v.Path+"/") {
			return v.Path
		}
	}
	return ""
}
