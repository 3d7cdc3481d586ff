package launcher

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
)

// writeFiles writes the delivered files, each 0600, replacing what was there atomically. With
// uid >= 0 the files belong to the application's user, who alone may read them.
//
// The image's file system is the host's, so it may hold planted symbolic links. None is
// followed: every directory on a file's path is opened component by component without following
// links (missing ones are created 0755), and a link anywhere on the path, or at the file itself,
// is refused. Nothing is replaced until every file is written beside its target, so a refusal
// leaves every target as it was.
func writeFiles(files map[string][]byte, uid, gid int) error {
	dirs := map[string]*os.Root{}
	defer func() {
		for _, d := range dirs {
			d.Close()
		}
	}()
	var pending []*atomicfile.PendingFile
	defer func() {
		for _, f := range pending {
			f.Cleanup()
		}
	}()
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) {
			return fmt.Errorf("delivered file path %q: expected an absolute clean path", p)
		}
		if p == enclave.ReservedDir || strings.HasPrefix(p, enclave.ReservedDir+"/") {
			return fmt.Errorf("delivered file %s: %s is reserved for the launcher and the enclave manifest", p, enclave.ReservedDir)
		}
		dir, name := filepath.Split(p)
		dir = filepath.Clean(dir)
		d, ok := dirs[dir]
		if !ok {
			var err error
			if d, err = atomicfile.OpenDir(dir, 0o755); err != nil {
				return fmt.Errorf("delivered file %s: %w", p, err)
			}
			dirs[dir] = d
		}
		f, err := atomicfile.CreateIn(d, name, 0o600, uid, gid)
		if err != nil {
			return fmt.Errorf("delivered file %s: %w", p, err)
		}
		pending = append(pending, f)
		if _, err := f.Write(files[p]); err != nil {
			return fmt.Errorf("write delivered file %s: %w", p, err)
		}
	}
	for _, f := range pending {
		if err := f.Commit(); err != nil { // names the file
			return fmt.Errorf("write delivered file: %w", err)
		}
	}
	return nil
}

// checkDelivered refuses delivered files that would change what the next start verifies: a
// trusted file of the enclave manifest (replaced in the container's layer, it would no longer
// match the manifest and every restart would be refused), a protected file's path or encrypted
// copy, or anything below the protected files' plaintext directory. Excluded paths may be
// delivered. It writes nothing; call it before writeFiles.
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
		}
	}
	return errors.Join(errs...)
}
