package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeFiles writes the delivered files, each 0600, replacing what was there atomically. With
// uid >= 0 the files belong to the application's user, who alone may read them.
func writeFiles(files map[string][]byte, uid, gid int) error {
	for p, b := range files {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
			return fmt.Errorf("delivered file path %q: expected an absolute clean path", p)
		}
		if err := writeFileAtomic(p, b, 0o600, uid, gid); err != nil {
			return fmt.Errorf("write delivered file %s: %w", p, err)
		}
	}
	return nil
}

func writeFileAtomic(p string, b []byte, mode os.FileMode, uid, gid int) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".cloister-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
