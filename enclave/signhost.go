package enclave

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Link is a symbolic link met while listing host files, and the file it resolves to.
type Link struct {
	// Path is the link's absolute path, as given or met in a walked directory.
	Path string
	// Target is the absolute path with every link resolved.
	Target string
}

// virtualDirs are the kernel's file systems, whose files change by themselves and may block
// when read; walks skip them.
var virtualDirs = []string{"/dev", "/proc", "/sys"}

// HostFiles returns the trusted files of a program run on this host with `cloister launch`:
// each of paths (absolute, or relative to the working directory) that is a regular file, and
// every regular file below each that is a directory (walked in lexical order; symbolic links to
// directories met inside are not followed, to avoid cycles; /dev, /proc and /sys are skipped).
//
// A symbolic link to a regular file, given or met in a walk, is listed twice, at its own path
// and at its resolved target, both with the target's size and SHA-256: the launcher's check
// follows links (within "/"), so the link's path matches as long as it leads to the same
// content, and the target is measured under its real name too. The links are returned in the
// order met, each once. A given link to a directory walks the resolved directory.
//
// The result is sorted by path, without duplicates, as [Manifest.Files] wants. HostFiles
// fails on a path that does not exist, a dangling link, or a given path that is neither a
// regular file nor a directory (a device, a pipe); unsupported entries met in a walk are
// skipped.
func HostFiles(paths []string) ([]File, []Link, error) {
	files := map[string]File{}
	var links []Link
	var errs []error
	add := func(p, content string) error {
		if _, ok := files[p]; ok {
			return nil
		}
		sum, size, err := hashHostFile(content)
		if err != nil {
			return err
		}
		files[p] = File{Path: p, SHA256: sum, Size: size}
		return nil
	}
	// addLink lists link p and its target if the target is a regular file; dir reports a
	// directory target.
	addLink := func(p string) (dir string, err error) {
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", fmt.Errorf("symbolic link %s: %w", p, err)
		}
		if target, err = filepath.Abs(target); err != nil {
			return "", err
		}
		fi, err := os.Stat(target)
		switch {
		case err != nil:
			return "", fmt.Errorf("symbolic link %s: %w", p, err)
		case fi.IsDir():
			return target, nil
		case !fi.Mode().IsRegular():
			return "", fmt.Errorf("symbolic link %s: resolves to %s, %s; expected a regular file or a directory", p, target, describeMode(fi.Mode()))
		}
		if _, seen := files[p]; seen {
			return "", nil
		}
		links = append(links, Link{Path: p, Target: target})
		if err := add(p, target); err != nil {
			return "", err
		}
		return "", add(target, target)
	}
	walk := func(root string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case d.IsDir() && slices.Contains(virtualDirs, p):
				return fs.SkipDir
			case d.Type().IsRegular():
				return add(p, p)
			case d.Type()&fs.ModeSymlink != 0:
				// A dangling link is refused too: listed, its path would be unmeasured, and the
				// host could later make it resolve to content of its choosing.
				if _, err := addLink(p); err != nil {
					return err
				}
			}
			return nil // directories are walked, other entries (devices, pipes, sockets) skipped
		})
	}
	for _, given := range paths {
		p, err := filepath.Abs(given)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case fi.Mode().IsRegular():
			err = add(p, p)
		case fi.IsDir():
			err = walk(p)
		case fi.Mode()&fs.ModeSymlink != 0:
			var dir string
			if dir, err = addLink(p); err == nil && dir != "" {
				err = walk(dir)
			}
		default:
			err = fmt.Errorf("%s: expected a regular file, a directory or a symbolic link, found %s", p, describeMode(fi.Mode()))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	return out, links, nil
}

// hashHostFile hashes the regular file p, following symbolic links.
func hashHostFile(p string) (Digest, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Digest{}, 0, err
	}
	if !fi.Mode().IsRegular() {
		return Digest{}, 0, fmt.Errorf("%s: expected a regular file, found %s", p, describeMode(fi.Mode()))
	}
	sum, n, err := HashReader(f)
	if err != nil {
		return Digest{}, 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return sum, n, nil
}
