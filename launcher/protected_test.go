package launcher

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
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

func TestUnlockOne(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "secret.txt")

	pf := encryptTo(t, key, path, []byte("the current secret"))
	if err := unlockOne(dir, pf, key, -1, -1); err != nil {
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
	path2 := filepath.Join(t.TempDir(), "secret.txt")
	current := encryptTo(t, key, path2, []byte("the current secret"))
	encryptTo(t, key, path2, []byte("a revoked old value"))
	current.Size = int64(len("a revoked old value"))
	err := unlockOne(dir, current, key, -1, -1)
	if err == nil || !strings.Contains(err.Error(), "an old or altered copy swapped in") {
		t.Fatalf("old copy: err = %v; want the SHA-256 mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, path2)); !os.IsNotExist(err) {
		t.Errorf("the refused file's plaintext was left in %s", dir)
	}

	// A wrong key, and a file moved to another path, fail in the format itself.
	path3 := filepath.Join(t.TempDir(), "other.txt")
	pf3 := encryptTo(t, key, path3, []byte("x"))
	if err := unlockOne(dir, pf3, bytes.Repeat([]byte{8}, 32), -1, -1); err == nil {
		t.Errorf("wrong key accepted")
	}
	moved := pf3
	moved.Path = filepath.Join(filepath.Dir(path3), "moved.txt")
	os.Rename(path3, moved.Path)
	if err := unlockOne(dir, moved, key, -1, -1); err == nil {
		t.Errorf("a file moved to another path was accepted")
	}
}
