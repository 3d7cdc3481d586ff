package launcher

import (
	"crypto/hkdf"
	"crypto/sha256"
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

// ProtectedDir is where a converted image's protected files are decrypted to (its enclave
// manifest's plaintext_dir): memory-backed storage only.
const ProtectedDir = enclave.ProtectedDir

// tmpfsMagic is the statfs type of tmpfs (linux/magic.h).
const tmpfsMagic = 0x01021994

// unlockProtected decrypts each protected file with the key the Coordinator delivered into
// plain, m.PlaintextDir opened by openPlaintextDir (memory-backed storage, emptied), and
// recreates there the directories above them, every file and directory with the mode, owner and
// group the signed enclave manifest records (the original image's). The plaintext is never
// written to disk: in simulation PlaintextDir is on a tmpfs (/dev/shm); inside Gramine the
// Gramine manifest mounts an in-enclave tmpfs there.
//
// Nothing is written outside PlaintextDir: each protected path is, in the image, a symbolic link
// to its plaintext there, and its encrypted copy stays where the converter put it
// (m.EncryptedDir). So whatever a start leaves behind, the next one finds the image as it was,
// verifies it the same and unlocks again. No symbolic link is followed on the way to anything
// read or written. Owners are set only when the launcher runs as root; otherwise the files
// belong to the launcher's user, with the recorded modes.
func unlockProtected(plain *os.Root, m *enclave.Manifest, resp *api.ActivationResponse) error {
	if len(m.ProtectedFiles) == 0 {
		return nil
	}
	for _, pf := range m.ProtectedFiles { // refuse before anything is written
		if _, ok := resp.FileKeys[pf.Key]; !ok {
			return fmt.Errorf("protected file %s: the Coordinator delivered no key %q; list it in the workload's file_keys", pf.Path, pf.Key)
		}
	}
	owners := os.Geteuid() == 0
	// Directories stay 0700 and the launcher's while files are written into them, so that a
	// directory recorded read-only can still be filled; they get their modes last.
	for _, d := range m.ProtectedDirs {
		if err := plain.Mkdir(strings.TrimPrefix(d.Path, "/"), 0o700); err != nil {
			return fmt.Errorf("protected directory %s: %w", d.Path, err)
		}
	}
	for _, pf := range m.ProtectedFiles {
		if err := unlockOne(plain, m, pf, resp.FileKeys[pf.Key], owners); err != nil {
			return fmt.Errorf("protected file %s: %w", pf.Path, err)
		}
	}
	for i := len(m.ProtectedDirs) - 1; i >= 0; i-- { // deepest first
		d := m.ProtectedDirs[i]
		if err := setAttrs(plain, strings.TrimPrefix(d.Path, "/"), d.Mode, d.UID, d.GID, owners); err != nil {
			return fmt.Errorf("protected directory %s: %w", d.Path, err)
		}
	}
	return nil
}

// openPlaintextDir opens dir, creating it 0755 if missing, without following a symbolic link on
// its path; refuses it unless it is memory-backed; and empties it: what is there was left by an
// earlier start (a container restarted with the same /dev/shm). dir itself is kept, since inside
// Gramine it is a mount point.
func openPlaintextDir(dir string) (*os.Root, error) {
	plain, err := atomicfile.OpenDir(dir, 0o755)
	if err != nil {
		return nil, err
	}
	if err := checkMemoryBacked(plain); err != nil {
		plain.Close()
		return nil, err
	}
	err = clearDir(plain)
	if err == nil {
		err = plain.Chmod(".", 0o755) // traversable by every user the application runs as
	}
	if err != nil {
		plain.Close()
		return nil, fmt.Errorf("clear %s, left by an earlier start: %w", dir, err)
	}
	return plain, nil
}

// clearDir removes everything in dir (os.Root.RemoveAll follows no symbolic link).
func clearDir(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := dir.RemoveAll(name); err != nil {
			return err
		}
	}
	return nil
}

// fileMode turns recorded permission bits into an os.FileMode for chmod.
func fileMode(m enclave.Mode) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// setAttrs gives name in dir its recorded owner (when owners is set) and then its mode: chown
// clears setuid and setgid, so the mode comes last.
func setAttrs(dir *os.Root, name string, mode enclave.Mode, uid, gid uint32, owners bool) error {
	if owners {
		if err := dir.Lchown(name, int(uid), int(gid)); err != nil {
			return err
		}
	}
	return dir.Chmod(name, fileMode(mode))
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

// unlockOne decrypts one protected file from its encrypted copy into plainRoot, at its path
// below it, with its recorded mode and owner, after checking that the protected path itself is
// the converter's symbolic link to exactly that plaintext.
func unlockOne(plainRoot *os.Root, m *enclave.Manifest, pf enclave.ProtectedFile, key []byte, owners bool) error {
	if err := checkPlaintextLink(pf.Path, m.PlaintextPath(pf.Path)); err != nil {
		return err
	}
	stored := m.EncryptedPath(pf.Path)
	dirPath, name := filepath.Split(stored)
	dir, err := atomicfile.OpenDir(filepath.Clean(dirPath), 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	in, err := openRegular(dir, name)
	if err != nil {
		return err
	}
	defer in.Close()

	plainDirPath, plainName := filepath.Split(pf.Path)
	rel := strings.TrimPrefix(filepath.Clean(plainDirPath), "/")
	if rel == "" {
		rel = "."
	}
	plainDir, err := atomicfile.OpenDirIn(plainRoot, rel, 0)
	if err != nil {
		return err
	}
	defer plainDir.Close()
	// Every directory the plaintext goes into, not only the top one: a mount on a
	// subdirectory would put plaintext on disk.
	if err := checkMemoryBacked(plainDir); err != nil {
		return err
	}
	uid, gid := -1, -1
	if owners {
		uid, gid = int(pf.UID), int(pf.GID)
	}
	out, err := atomicfile.CreateIn(plainDir, plainName, 0o600, uid, gid)
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
		return fmt.Errorf("encrypted copy %s has SHA-256 %s; the enclave manifest expects %s (an old or altered copy swapped in?)", stored, sum, pf.SHA256)
	}
	if version != pf.Version {
		return fmt.Errorf("encrypted copy %s has version %d; the enclave manifest expects %d (an old copy swapped in?)", stored, version, pf.Version)
	}
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != pf.Size {
		return fmt.Errorf("decrypted size %d; the enclave manifest expects %d", fi.Size(), pf.Size)
	}
	if err := out.Chmod(fileMode(pf.Mode)); err != nil { // after the chown, which clears setuid
		return err
	}
	return out.Commit()
}

// checkPlaintextLink requires p to be a symbolic link to exactly target, as the converter made
// it. In simulation VerifyFiles has checked it already; inside Gramine nothing else does.
func checkPlaintextLink(p, target string) error {
	got, err := os.Readlink(p)
	switch {
	case err != nil:
		return fmt.Errorf("expected a symbolic link to %s: %w", target, err)
	case got != target:
		return fmt.Errorf("expected a symbolic link to %s, found one to %q", target, got)
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
