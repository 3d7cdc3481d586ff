package pcs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// maxDirEntries bounds the entries of the cache directory that loadDir reads.
const maxDirEntries = 4096

// Prefixes of the hidden directories store uses while replacing a set.
const (
	tmpPrefix = ".tmp-"
	oldPrefix = ".old-"
)

// dirName is the name of k's directory: the FMSPC in upper-case hex, "-", the CA type.
func (k cacheKey) dirName() string { return fmt.Sprintf("%X-%s", k.fmspc, k.ca) }

// parseDirName is the inverse of dirName.
func parseDirName(name string) (cacheKey, bool) {
	var k cacheKey
	fmspc, ca, ok := strings.Cut(name, "-")
	if !ok || len(fmspc) != 2*len(k.fmspc) || strings.ToUpper(fmspc) != fmspc {
		return k, false
	}
	if _, err := hex.Decode(k.fmspc[:], []byte(fmspc)); err != nil {
		return k, false
	}
	k.ca = sgx.PCKCAType(ca)
	return k, k.ca == sgx.PCKCAProcessor || k.ca == sgx.PCKCAPlatform
}

// loadDir creates the cache directory if needed, removes what an interrupted store left
// behind, and loads every set that verifies. A set that does not is logged and skipped.
func (p *Provider) loadDir() error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("collateral cache directory: %w", err)
	}
	f, err := os.Open(p.dir)
	if err != nil {
		return fmt.Errorf("collateral cache directory: %w", err)
	}
	entries, err := f.ReadDir(maxDirEntries)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("collateral cache directory %s: %w", p.dir, err)
	}
	now := p.now()
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(p.dir, name)
		if strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, oldPrefix) {
			if err := os.RemoveAll(path); err != nil {
				p.log.Warn("cannot remove a leftover of an interrupted cache write", "path", path, "error", err)
			}
			continue
		}
		k, ok := parseDirName(name)
		if !ok || !e.IsDir() {
			p.log.Debug("ignoring an unknown entry of the collateral cache directory", "path", path)
			continue
		}
		col, err := verify.LoadCollateral(path)
		var expired error
		if err == nil {
			expired, err = p.check(col, k, now)
		}
		if err != nil {
			p.log.Warn("discarding cached collateral that does not verify; it will not be served", "path", path, "error", err)
			continue
		}
		if expired != nil {
			p.log.Info("loaded cached collateral past its validity; it will be refreshed", "path", path, "error", expired)
		}
		p.entries[k] = &entry{col: col, refreshAt: earliestNextUpdate(col)}
		p.log.Debug("loaded cached collateral", "path", path, "next_update", earliestNextUpdate(col))
	}
	return nil
}

// store writes col as k's directory, replacing any previous one: it writes a hidden temporary
// directory, then renames it into place, so that the directory is always one complete set.
// It is only called from k's flight, so there is one store per key at a time.
func (p *Provider) store(k cacheKey, col *verify.Collateral) error {
	name := k.dirName()
	tmp, err := os.MkdirTemp(p.dir, tmpPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("store collateral: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("store collateral: %w", err)
	}
	if err := col.WriteDir(tmp); err != nil {
		return fmt.Errorf("store collateral: %w", err)
	}
	final := filepath.Join(p.dir, name)
	old := filepath.Join(p.dir, oldPrefix+name+"-"+rand.Text())
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store collateral: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("store collateral: %w", err)
	}
	if d, err := os.Open(p.dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			p.log.Debug("cannot sync the collateral cache directory", "path", p.dir, "error", err)
		}
	}
	if err := os.RemoveAll(old); err != nil {
		p.log.Warn("cannot remove a replaced cache directory", "path", old, "error", err)
	}
	return nil
}
