package injector

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// maxSimFiles and maxSimBytes bound a simulated platform directory (it holds about 15 small
// files).
const (
	maxSimFiles = 64
	maxSimBytes = 1 << 20
)

// SimPlatformFiles lists the regular files of the simulated platform directory dir (`cloister
// sim init DIR`), as slash-separated relative paths in lexical order.
func SimPlatformFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if files = append(files, filepath.ToSlash(rel)); len(files) > maxSimFiles {
			return fmt.Errorf("more than %d files; expected a simulated platform directory (cloister sim init)", maxSimFiles)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("simulated platform %s: %w", dir, err)
	}
	if !slices.Contains(files, "root_ca.pem") {
		return nil, fmt.Errorf("simulated platform %s: no root_ca.pem; expected a directory made by `cloister sim init`", dir)
	}
	slices.Sort(files)
	return files, nil
}

// SimSecretData returns the data of the Secret [SimSecret] that delivers the simulated
// platform in dir to pods: one key per file, its relative path with "/" replaced by ".". The
// webhook mounts it at [SimMountPath] with each key back at its path. The platform's private
// keys are in it: a simulated platform protects nothing.
func SimSecretData(dir string) (map[string][]byte, error) {
	files, err := SimPlatformFiles(dir)
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(files))
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("simulated platform: %w", err)
		}
		if total += len(b); total > maxSimBytes {
			return nil, fmt.Errorf("simulated platform %s: more than %d bytes; expected a directory made by `cloister sim init`", dir, maxSimBytes)
		}
		data[simKey(f)] = b
	}
	return data, nil
}
