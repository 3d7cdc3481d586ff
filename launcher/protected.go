package launcher

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/protect"
)

// ProtectedDir is where the plaintext of protected files lives: memory-backed storage only.
const ProtectedDir = enclave.ProtectedDir

// tmpfsMagic is the statfs type of tmpfs (linux/magic.h).
const tmpfsMagic = 0x01021994

// unlockProtected decrypts each protected file with the key the Coordinator delivered into
// memory-backed storage, and makes it appear at its original path through a symbolic link.
// The plaintext is never written to disk: in simulation ProtectedDir is a tmpfs; inside Gramine
// the Gramine manifest mounts an in-enclave tmpfs there. As for delivered files, no symbolic
// link is followed on the way to anything written: not in ProtectedDir's path, not in a
// protected file's directory.
func unlockProtected(m *enclave.Manifest, resp *api.ActivationResponse, uid, gid int) error {
	if len(m.ProtectedFiles) == 0 {
		return nil
	}
	plain, err := atomicfile.OpenDir(ProtectedDir, 0o700)
	if err != nil {
		return fmt.Errorf("protected files: %w", err)
	}
	defer plain.Close()
	if err := checkMemoryBacked(plain); err != nil {
		return fmt.Errorf("protected files: %w", err)
	}
	for _, pf := range m.ProtectedFiles {
		key, ok := resp.FileKeys[pf.Key]
		if !ok {
			return fmt.Errorf("protected file %s: the Coordinator delivered no key %q; list it in the workload's file_keys", pf.Path, pf.Key)
		}
		if err := unlockOne(plain, pf, key, uid, gid); err != nil {
			return fmt.Errorf("protected file %s: %w", pf.Path, err)
		}
	}
	return nil
}

// checkMemoryBacked refuses a directory that is not on a tmpfs.
func checkMemoryBacked(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(d.Fd()), &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir.Name(), err)
	}
	if st.Type != tmpfsMagic {
		return fmt.Errorf("%s is not memory-backed (file system type %#x, expected tmpfs); refusing to write plaintext there", dir.Name(), st.Type)
	}
	return nil
}

// unlockOne decrypts one protected file into plainRoot, at its path below it, and links it in
// at its path.
func unlockOne(plainRoot *os.Root, pf enclave.ProtectedFile, key []byte, uid, gid int) error {
	dirPath, name := filepath.Split(pf.Path)
	dirPath = filepath.Clean(dirPath)
	dir, err := atomicfile.OpenDir(dirPath, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	in, err := openRegular(dir, name)
	if err != nil {
		return err
	}
	defer in.Close()

	rel := strings.TrimPrefix(dirPath, "/")
	if rel == "" {
		rel = "."
	}
	plainDir, err := atomicfile.OpenDirIn(plainRoot, rel, 0o700)
	if err != nil {
		return err
	}
	defer plainDir.Close()
	if uid >= 0 {
		// The directories are 0700 and made by root: the application's user must own them to
		// reach its files. Chown does not leave plainRoot, which holds no links of ours.
		for d := rel; ; d = filepath.Dir(d) {
			if err := plainRoot.Lchown(d, uid, gid); err != nil {
				return err
			}
			if d == "." {
				break
			}
		}
	}
	out, err := atomicfile.CreateIn(plainDir, name, 0o600, uid, gid)
	if err != nil {
		return err
	}
	defer out.Cleanup() // removes the plaintext unless it was committed
	// The ciphertext is hashed as it is decrypted and must be the one the signed enclave
	// manifest names: with the same key and version an older copy would decrypt fine, and inside
	// Gramine nothing else checks these files (they are allowed, not trusted, files).
	h := sha256.New()
	version, err := protect.Decrypt(out, io.TeeReader(in, h), key, pf.Path)
	if err != nil {
		return err
	}
	var sum enclave.Digest
	h.Sum(sum[:0])
	if sum != pf.SHA256 { // Decrypt read to the end: it refuses trailing data
		return fmt.Errorf("encrypted copy has SHA-256 %s; the enclave manifest expects %s (an old or altered copy swapped in?)", sum, pf.SHA256)
	}
	if version != pf.Version {
		return fmt.Errorf("encrypted copy has version %d; the enclave manifest expects %d (an old copy swapped in?)", version, pf.Version)
	}
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != pf.Size {
		return fmt.Errorf("decrypted size %d; the enclave manifest expects %d", fi.Size(), pf.Size)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	// Replace the ciphertext by a link to the plaintext, so the application finds the file
	// at its original path. Rename over the path keeps it atomic.
	target := filepath.Join(plainRoot.Name(), pf.Path)
	tmp := ".cloister-link-" + rand.Text()
	if err := dir.Symlink(target, tmp); err != nil {
		return errors.Join(err, plainDir.Remove(name))
	}
	if err := dir.Rename(tmp, name); err != nil {
		return errors.Join(err, dir.Remove(tmp), plainDir.Remove(name))
	}
	return nil
}

// openRegular opens name in dir for reading if it is a regular file, not a symbolic link.
func openRegular(dir *os.Root, name string) (*os.File, error) {
	p := filepath.Join(dir.Name(), name)
	fi, err := dir.Lstat(name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the encrypted copy %s: %w", p, err)
	case fi.Mode()&os.ModeSymlink != 0:
		return nil, fmt.Errorf("%s %w; refusing to follow or replace it", p, atomicfile.ErrSymlink)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: expected the encrypted copy, a regular file; found mode %v", p, fi.Mode())
	}
	f, err := dir.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read the encrypted copy %s: %w", p, err)
	}
	if st, err := f.Stat(); err != nil || !os.SameFile(fi, st) {
		f.Close()
		return nil, fmt.Errorf("%s was replaced while it was being opened; refusing to follow it", p)
	}
	return f, nil
}

// gramineKeySize is the key size of Gramine's encrypted files (AES-GCM-128).
const gramineKeySize = 16

// provisionGramineKeys hands every delivered file key to Gramine, so that encrypted mounts
// (fs.mounts with type "encrypted" and key_name) of the workload work: Gramine reads a key
// written to /dev/attestation/keys/<name>. Gramine keys are 128-bit; each is derived from the
// 256-bit file key, so one secret serves both formats without reusing key bytes.
func provisionGramineKeys(dir string, keys map[string][]byte) error {
	for name, k := range keys {
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
			return fmt.Errorf("provision key %q to Gramine: expected a key name, not a path", name)
		}
		gk, err := hkdf.Key(sha256.New, k, nil, "cloister-gramine-pf-key-v1", gramineKeySize)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "keys", name), gk, 0); err != nil {
			return fmt.Errorf("provision key %q to Gramine: %w", name, err)
		}
	}
	return nil
}
