package enclave

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// manifest1000 returns a manifest of 1,000 trusted files with realistic
// paths, as the launcher's start-up budget assumes.
func manifest1000() *Manifest {
	m := fullManifest()
	m.Files = nil
	for i := range 1000 {
		p := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/python3.12/site-packages/pkg%03d/module_%04d.py", i/40, i)
		m.Files = append(m.Files, File{Path: p, SHA256: sha256.Sum256([]byte(p)), Size: int64(1000 + i)})
	}
	return m
}

// BenchmarkParse1000 measures Parse (verify, strict decode and Validate) of
// a signed manifest of 1,000 trusted files.
func BenchmarkParse1000(b *testing.B) {
	signed := mustSign(b, manifest1000(), loadKey(b, "signer.pem"))
	b.SetBytes(int64(len(signed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(signed); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParse1000Budget keeps Parse of a 1,000-file manifest within the
// launcher's start-up budget (30 ms from start to exec), with a wide margin
// for slow machines: the fastest of 20 runs must take at most 15 ms.
func TestParse1000Budget(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("timing is meaningless under -race and skipped under -short")
	}
	signed := mustSign(t, manifest1000(), loadKey(t, "signer.pem"))
	fastest := time.Hour
	for range 20 {
		start := time.Now()
		if _, err := Parse(signed); err != nil {
			t.Fatal(err)
		}
		fastest = min(fastest, time.Since(start))
	}
	if fastest > 15*time.Millisecond {
		t.Errorf("Parse of a 1,000-file manifest takes %v, want at most 15ms", fastest)
	}
}

// benchTree writes files of the given size with random contents and returns
// the root and a manifest listing them.
func benchTree(b *testing.B, count, size int) (string, *Manifest) {
	b.Helper()
	root := b.TempDir()
	m := minimalManifest()
	rng := rand.NewChaCha8([32]byte{1})
	data := make([]byte, size)
	for i := range count {
		rng.Read(data)
		p := fmt.Sprintf("/usr/lib/python3/dist-packages/pkg%02d/f%05d.py", i%64, i)
		name := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
		m.Files = append(m.Files, File{Path: p, SHA256: sha256.Sum256(data), Size: int64(size)})
	}
	return root, m
}

func benchVerify(b *testing.B, count, size int) {
	root, m := benchTree(b, count, size)
	b.SetBytes(int64(count * size))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.VerifyFiles(b.Context(), root, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFilesTree hashes 256 MiB in 32 files of 8 MiB (page cache).
func BenchmarkVerifyFilesTree(b *testing.B) { benchVerify(b, 32, 8<<20) }

// BenchmarkVerifyFiles1000Small checks 1,000 files of 4 KiB: per-file cost.
func BenchmarkVerifyFiles1000Small(b *testing.B) { benchVerify(b, 1000, 4<<10) }

func BenchmarkHashReader(b *testing.B) {
	data := bytes.Repeat([]byte{0x5a}, 64<<20)
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		if _, _, err := HashReader(r); err != nil {
			b.Fatal(err)
		}
	}
}
