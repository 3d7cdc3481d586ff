// Package atomicfile replaces files so that a reader, a crash or a power loss sees either the
// old content or the new, never a mix or an empty file: write a new temporary file beside the
// target (a random name, created exclusively), fsync it, rename it over the target, fsync the
// directory. Trust anchors (a pinned root), sealed keys and addresses for scripts all go through
// it.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with b, with permissions perm. On error the target is unchanged and no
// temporary file is left behind.
func Write(path string, b []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeSync(f, b, perm); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return syncDir(dir)
}

// writeSync sets f's permissions, writes b, fsyncs and closes f; it closes f on error too.
func writeSync(f *os.File, b []byte, perm os.FileMode) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Chmod(perm) // CreateTemp makes 0600, and the umask must not narrow perm
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
