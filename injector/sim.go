package injector

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxSimFiles and maxSimBytes bound a simulated platform directory (it holds about 15 small
// files).
const (
	maxSimFiles = 64
	maxSimBytes = 1 << 20
)

// SimPlatformFiles lists the regular files of the simulated platform directory dir (`cloister
// sim init DIR`), as slash-separated relative paths in lexical order. dir may be a mounted
// Secret: symbolic links are followed and the kubelet's own entries ("..data" and the
// timestamped directory it points to) are skipped.
func SimPlatformFiles(dir string) ([]string, error) {
	var files []string
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		entries, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "..") {
				continue
			}
			r := path.Join(rel, e.Name())
			fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(r)))
			if err != nil {
				return err
			}
			switch {
			case fi.IsDir() && depth < 2:
				if err := walk(r, depth+1); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				if files = append(files, r); len(files) > maxSimFiles {
					return fmt.Errorf("more than %d files; expected a simulated platform directory (cloister sim init)", maxSimFiles)
				}
			}
		}
		return nil
	}
	if err := walk("", 0); err != nil {
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
