package launcher

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/protect"
)

// encryptTo writes plain encrypted for path (version 1) to path and returns its manifest entry.
func encryptTo(t *testing.T, key []byte, path string, plain []byte) enclave.ProtectedFile {
	t.Helper()
	var ct bytes.Buffer
	if err := protect.Encrypt(&ct, bytes.NewReader(plain), key, path, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, ct.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return enclave.ProtectedFile{Path: path, Key: "k", Size: int64(len(plain)), SHA256: sha256.Sum256(ct.Bytes()), Version: 1}
}

// plainRoot opens a directory for plaintext as unlockProtected opens ProtectedDir.
func plainRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := realTempDir(t)
	r, err := atomicfile.OpenDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r
}

func TestUnlockOne(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	dir, root := plainRoot(t)
	path := filepath.Join(realTempDir(t), "secret.txt")

	pf := encryptTo(t, key, path, []byte("the current secret"))
	if err := unlockOne(root, pf, key, -1, -1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "the current secret" {
		t.Fatalf("after unlocking, %s reads %q, %v", path, b, err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is not a link to the plaintext in memory", path)
	}

	// An older copy, encrypted with the same key and version, decrypts fine: only the ciphertext
	// hash in the signed manifest tells it apart. It must be refused, leaving no plaintext.
	path2 := filepath.Join(realTempDir(t), "secret.txt")
	current := encryptTo(t, key, path2, []byte("the current secret"))
	encryptTo(t, key, path2, []byte("a revoked old value"))
	current.Size = int64(len("a revoked old value"))
	err := unlockOne(root, current, key, -1, -1)
	if err == nil || !strings.Contains(err.Error(), "an old or altered copy swapped in") {
		t.Fatalf("old copy: err = %v; want the SHA-256 mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, path2)); !os.IsNotExist(err) {
		t.Errorf("the refused file's plaintext was left in %s", dir)
	}

	// A wrong key, and a file moved to another path, fail in the format itself.
	path3 := filepath.Join(realTempDir(t), "other.txt")
	pf3 := encryptTo(t, key, path3, []byte("x"))
	if err := unlockOne(root, pf3, bytes.Repeat([]byte{8}, 32), -1, -1); err == nil {
		t.Errorf("wrong key accepted")
	}
	moved := pf3
	moved.Path = filepath.Join(filepath.Dir(path3), "moved.txt")
	os.Rename(path3, moved.Path)
	if err := unlockOne(root, moved, key, -1, -1); err == nil {
		t.Errorf("a file moved to another path was accepted")
	}
}

// TestUnlockOneRefusesLinks: the link to the plaintext is placed in the protected file's own
// directory, never through a symbolic link planted on its path, and the ciphertext itself may not
// be a link; the plaintext is not left behind.
func TestUnlockOneRefusesLinks(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	dir, root := plainRoot(t)
	real, outside := realTempDir(t), realTempDir(t)
	mustMkdir(t, filepath.Join(real, "app"))
	pf := encryptTo(t, key, filepath.Join(real, "app", "secret.txt"), []byte("the secret"))

	// The image links /base/app to the real directory: the protected path goes through it.
	base := realTempDir(t)
	mustSymlink(t, filepath.Join(real, "app"), filepath.Join(base, "app"))
	viaLink := pf
	viaLink.Path = filepath.Join(base, "app", "secret.txt")
	err := unlockOne(root, viaLink, key, -1, -1)
	if want := filepath.Join(base, "app") + " is a symbolic link; refusing to write through it"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("protected file behind a linked directory: %v; want %q", err, want)
	}

	// The ciphertext's name is a link to a good copy elsewhere.
	good := encryptTo(t, key, filepath.Join(outside, "secret.txt"), []byte("the secret"))
	mustSymlink(t, good.Path, filepath.Join(base, "secret.txt"))
	linked := good
	linked.Path = filepath.Join(base, "secret.txt")
	err = unlockOne(root, linked, key, -1, -1)
	if want := linked.Path + " is a symbolic link; refusing to follow or replace it"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("protected file that is a link: %v; want %q", err, want)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("%s holds %d entries; want only the planted copy", outside, len(entries))
	}
	if fi, err := os.Lstat(pf.Path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the real ciphertext was replaced: %v, %v", fi.Mode(), err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("plaintext %s was left behind", p)
		}
		return err
	})
}
