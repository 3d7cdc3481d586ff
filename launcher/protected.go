package launcher

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
)

// ProtectedDir is where the plaintext of protected files lives: memory-backed storage only.
const ProtectedDir = enclave.ProtectedDir

// tmpfsMagic is the statfs type of tmpfs (linux/magic.h).
const tmpfsMagic = 0x01021994

// unlockProtected decrypts each protected file with the key the Coordinator delivered into
// memory-backed storage, and makes it appear at its original path through a symbolic link.
// The plaintext is never written to disk: in simulation ProtectedDir is a tmpfs; inside Gramine
// the Gramine manifest mounts an in-enclave tmpfs there.
func unlockProtected(m *enclave.Manifest, resp *api.ActivationResponse, uid, gid int) error {
	if len(m.ProtectedFiles) == 0 {
		return nil
	}
	if err := os.MkdirAll(ProtectedDir, 0o700); err != nil {
		return fmt.Errorf("protected files: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(ProtectedDir, &st); err != nil {
		return fmt.Errorf("protected files: %w", err)
	}
	if st.Type != tmpfsMagic {
		return fmt.Errorf("protected files: %s is not memory-backed (file system type %#x, expected tmpfs); refusing to write plaintext there", ProtectedDir, st.Type)
	}
	for _, pf := range m.ProtectedFiles {
		key, ok := resp.FileKeys[pf.Key]
		if !ok {
			return fmt.Errorf("protected file %s: the Coordinator delivered no key %q; list it in the workload's file_keys", pf.Path, pf.Key)
		}
		if err := unlockOne(ProtectedDir, pf, key, uid, gid); err != nil {
			return fmt.Errorf("protected file %s: %w", pf.Path, err)
		}
	}
	return nil
}

// unlockOne decrypts one protected file into dir and links it in at its path.
func unlockOne(dir string, pf enclave.ProtectedFile, key []byte, uid, gid int) error {
	in, err := os.Open(pf.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	plain := filepath.Join(dir, pf.Path)
	if err := os.MkdirAll(filepath.Dir(plain), 0o700); err != nil {
		return err
	}
	if uid >= 0 {
		// The directories are 0700 and made by root: the application's user must own them to
		// reach its files.
		for d := filepath.Dir(plain); ; d = filepath.Dir(d) {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
			if d == dir || d == "/" {
				break
			}
		}
	}
	out, err := os.OpenFile(plain, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if uid >= 0 {
		if err := out.Chown(uid, gid); err != nil {
			out.Close()
			return err
		}
	}
	// The ciphertext is hashed as it is decrypted and must be the one the signed enclave
	// manifest names: with the same key and version an older copy would decrypt fine, and inside
	// Gramine nothing else checks these files (they are allowed, not trusted, files).
	h := sha256.New()
	version, err := protect.Decrypt(out, io.TeeReader(in, h), key, pf.Path)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var sum enclave.Digest
		h.Sum(sum[:0])
		if sum != pf.SHA256 { // Decrypt read to the end: it refuses trailing data

			err = fmt.Errorf("encrypted copy has SHA-256 %s; the enclave manifest expects %s (an old or altered copy swapped in?)", sum, pf.SHA256)
		}
	}
	if err == nil && version != pf.Version {
		err = fmt.Errorf("encrypted copy has version %d; the enclave manifest expects %d (an old copy swapped in?)", version, pf.Version)
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(plain); err == nil && fi.Size() != pf.Size {
			err = fmt.Errorf("decrypted size %d; the enclave manifest expects %d", fi.Size(), pf.Size)
		}
	}
	if err != nil {
		os.Remove(plain)
		return err
	}
	// Replace the ciphertext by a link to the plaintext, so the application finds the file
	// at its original path. Rename over the path keeps it atomic.
	tmp := pf.Path + ".cloister-link"
	os.Remove(tmp)
	if err := os.Symlink(plain, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, pf.Path); err != nil {
		os.Remove(tmp)
		return errors.Join(err, os.Remove(plain))
	}
	return nil
}

// gramineKeySize is the key size of Gramine's encrypted files (AES-GCM-128).
const gramineKeySize = 16

// provisionGramineKeys hands every delivered file key to Gramine, so that encrypted mounts
// (fs.mounts with type "encrypted" and key_name) of the workload work: Gramine reads a key
// written to /dev/attestation/keys/<name>. Gramine keys are 128-bit; each is derived from the
// 256-bit file key, so one secret serves both formats without reusing key bytes.
func provisionGramineKeys(dir string, keys map[string][]byte) error {
	for name, k := range keys {
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
