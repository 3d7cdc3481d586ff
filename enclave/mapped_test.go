package enclave

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeRandom writes size random bytes to dir/name and returns them.
func writeRandom(t *testing.T, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(size)}).Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyFilesMapped: files from mapMinSize up are hashed mapped, smaller ones read, with
// the same verdicts: matching files pass, a changed byte past the first piece is found.
func TestVerifyFilesMapped(t *testing.T) {
	root := t.TempDir()
	m := minimalManifest()
	for _, size := range []int{mapMinSize - 1, mapMinSize, 3*mapMinSize + 5} {
		name := fmt.Sprintf("f%d", size)
		b := writeRandom(t, root, name, size)
		m.Files = append(m.Files, File{Path: "/" + name, SHA256: sha256.Sum256(b), Size: int64(size)})
	}
	if err := m.VerifyFiles(t.Context(), root, VerifyOptions{}); err != nil {
		t.Fatalf("VerifyFiles = %v, want nil", err)
	}
	big := filepath.Join(root, strings.TrimPrefix(m.Files[2].Path, "/"))
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	b[2*mapMinSize+1] ^= 1
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = m.VerifyFiles(t.Context(), root, VerifyOptions{})
	fe, ok := errors.AsType[*FilesError](err)
	want := Mismatch{Path: m.Files[2].Path, Expected: "sha256 " + m.Files[2].SHA256.String(), Found: "sha256 " + Digest(sha256.Sum256(b)).String()}
	if !ok || len(fe.Mismatches) != 1 || fe.Mismatches[0] != want {
		t.Errorf("VerifyFiles with a changed byte = %v, want %v", err, want)
	}
}

// TestHashMappingShrunk: a file that shrinks under its mapping (the host may change any
// file) gives errFault, not a crash, and a mapping hashes as sha256 does.
func TestHashMappingShrunk(t *testing.T) {
	dir := t.TempDir()
	want := writeRandom(t, dir, "f", 4*mapMinSize)
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, mapped, err := hashFileMapped(f, int64(len(want)), nil)
	if !mapped || err != nil || d != sha256.Sum256(want) {
		t.Fatalf("hashFileMapped = %v, %v, %v; want sha256 %x", d, mapped, err, sha256.Sum256(want))
	}
	b, err := mapFile(f, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	if err := f.Truncate(mapMinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := hashMapping(b, nil); !errors.Is(err, errFault) {
		t.Errorf("hashMapping of a file that shrank = %v, want %v", err, errFault)
	}
	done := make(chan struct{})
	close(done)
	if _, err := hashMapping(b[:mapMinSize], done); !errors.Is(err, errCanceled) {
		t.Errorf("hashMapping when done = %v, want %v", err, errCanceled)
	}
}

// TestHashMappedSizeAfter: a file shorter than the size it is hashed as, by less than a page,
// hashes without a fault (the rest of the page reads as zeros); its size afterwards gives it
// away, and the verification reports the change.
func TestHashMappedSizeAfter(t *testing.T) {
	dir := t.TempDir()
	want := writeRandom(t, dir, "f", 2*mapMinSize-10)
	f, err := os.Open(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, mapped, n, err := hashFileMappedSized(f, 2*mapMinSize, nil)
	if !mapped || err != nil || n != int64(len(want)) {
		t.Fatalf("hashFileMappedSized of a file 10 bytes short = mapped %v, size %d, %v; want mapped, size %d", mapped, n, err, len(want))
	}
}
