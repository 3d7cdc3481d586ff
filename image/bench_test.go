package image

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchSize keeps the benchmarks and their test small enough for CI; the
// full run is `cloister image bench --size 1GiB`.
const benchSize = 32 << 20

var benchImage = sync.OnceValues(func() (*BenchImage, error) {
	dir := filepath.Join(testDir(), "bench")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	return GenerateBenchImage(dir, benchSize, 1)
})

func openBench(tb testing.TB) (*BenchImage, *Source) {
	tb.Helper()
	bi, err := benchImage()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Open(context.Background(), bi.Ref)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return bi, s
}

// BenchmarkConvert converts the generated image, protecting one directory;
// throughput is in bytes of files.
func BenchmarkConvert(b *testing.B) {
	bi, s := openBench(b)
	cfg := testConfig(b, bi.Protect)
	b.SetBytes(bi.Bytes)
	b.ReportAllocs()
	for b.Loop() {
		res, err := Convert(context.Background(), s, cfg)
		if err != nil {
			b.Fatal(err)
		}
		res.Close()
	}
}

// BenchmarkFloor decompresses and hashes every byte of the same image: the
// least any converter must do.
func BenchmarkFloor(b *testing.B) {
	bi, s := openBench(b)
	b.SetBytes(bi.Bytes)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Floor(context.Background(), s, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchImage checks the generator and that a conversion of its image
// verifies, with the protected directory encrypted.
func TestBenchImage(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 32 MiB image")
	}
	bi, s := openBench(t)
	if bi.Files < 100 || bi.Bytes < benchSize || bi.Layers != benchLayers+1 {
		t.Errorf("bench image: %+v; want many files, at least %d bytes, %d layers", bi, benchSize, benchLayers+1)
	}
	f, err := Floor(context.Background(), s, 0)
	if err != nil || f.Bytes < bi.Bytes {
		t.Fatalf("Floor: %+v, %v; want at least %d bytes hashed", f, err, bi.Bytes)
	}
	res, err := Convert(context.Background(), s, testConfig(t, bi.Protect))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.Report.Files+len(res.Report.ProtectedFiles) != bi.Files || res.Report.Layers.Rewritten != 1 {
		t.Errorf("report %+v; want %d files and the secret layer rewritten", res.Report, bi.Files)
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}
}
