package image

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

// BenchImage describes an image made by [GenerateBenchImage].
type BenchImage struct {
	// Ref is the image, "oci:DIR:bench".
	Ref string
	// Protect is a directory of the image to protect in a benchmark.
	Protect string
	// Files and Bytes count the regular files and their total size.
	Files int
	Bytes int64
	// Layers counts the layers.
	Layers int
}

// benchLayers is the number of data layers of a bench image.
const benchLayers = 6

// GenerateBenchImage writes to dir an OCI layout holding an image of about
// size bytes of files, for benchmarks: six layers (gzip, fastest level)
// of many small files (1–64 KiB) and fewer large ones (256 KiB–8 MiB), half
// text-like and compressible, half random; plus a small layer with a
// directory to protect, /srv/secret. The content is a function of size and
// seed only.
func GenerateBenchImage(dir string, size int64, seed uint64) (*BenchImage, error) {
	if size < 1<<20 {
		return nil, fmt.Errorf("bench image size %d: expected at least 1 MiB", size)
	}
	tmp, err := os.MkdirTemp(dir, ".gen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bi := &BenchImage{Ref: TransportOCI + ":" + filepath.Join(dir, "image") + ":bench", Protect: "/srv/secret", Layers: benchLayers + 1}
	layers := make([]*fileLayer, benchLayers+1)
	counts := make([]struct {
		files int
		bytes int64
	}, len(layers))
	var g errgroup.Group
	for i := range layers {
		g.Go(func() error {
			rng := rand.New(rand.NewChaCha8(seedBytes(seed, uint64(i))))
			budget, prefix := size/benchLayers, fmt.Sprintf("data/layer%d/", i)
			if i == benchLayers {
				budget, prefix = 1<<20, "srv/secret/"
			}
			l, n, b, err := benchLayer(tmp, rng, prefix, budget)
			layers[i], counts[i].files, counts[i].bytes = l, n, b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var outs []outLayer
	for i, l := range layers {
		outs = append(outs, outLayer{desc: l.descriptor(), layer: l})
		bi.Files += counts[i].files
		bi.Bytes += counts[i].bytes
	}
	cfg := &v1.ConfigFile{Architecture: platform.Architecture, OS: "linux",
		Config: v1.Config{Entrypoint: []string{"/bin/app"}, Env: []string{"PATH=/bin"}}}
	img, err := newOutImage(types.OCIManifestSchema1, cfg, outs)
	if err != nil {
		return nil, err
	}
	p, err := layout.Write(filepath.Join(dir, "image"), empty.Index)
	if err != nil {
		return nil, err
	}
	if err := linkBlobs(filepath.Join(dir, "image"), img); err != nil {
		return nil, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: "bench"})); err != nil {
		return nil, err
	}
	return bi, nil
}

func seedBytes(seed, i uint64) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "cloister-bench-%d-%d", seed, i))
}

// benchWords make text-like, compressible content.
var benchWords = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their has would when if so no will
config value server client enclave manifest layer file path digest secret token request response error
0 1 2 3 4 5 6 7 8 9 10 42 100 255 1024 4096 true false null {} [] = : ; # -- // /usr/lib /etc`)

// benchLayer writes one layer of about budget bytes of files under prefix.
func benchLayer(dir string, rng *rand.Rand, prefix string, budget int64) (*fileLayer, int, int64, error) {
	lw, err := newLayerWriter(dir, gzip.BestSpeed)
	if err != nil {
		return nil, 0, 0, err
	}
	buf := make([]byte, 8<<20)
	var files int
	var total, small int64
	for n := 0; total < budget; n++ {
		// About 30% of the bytes in small files, the rest in large ones.
		size := int64(1<<10 + rng.IntN(63<<10))
		if small > total*3/10 {
			size = int64(256<<10 + rng.IntN(8<<20-256<<10))
		} else {
			small += size
		}
		size = min(size, budget-total)
		content := buf[:size]
		if n%2 == 0 {
			fillText(rng, content)
		} else {
			fillRandom(rng, content)
		}
		hdr := &tar.Header{Name: fmt.Sprintf("%s%03d/f%06d.dat", prefix, n/1000, n), Mode: 0o644, Size: size,
			ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if err := lw.tw.WriteHeader(hdr); err != nil {
			lw.abort()
			return nil, 0, 0, err
		}
		if _, err := lw.tw.Write(content); err != nil {
			lw.abort()
			return nil, 0, 0, err
		}
		files++
		total += size
	}
	l, err := lw.finish(types.OCILayer)
	return l, files, total, err
}

func fillText(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); {
		w := benchWords[rng.IntN(len(benchWords))]
		i += copy(b[i:], w)
		if i < len(b) {
			b[i] = " \n"[rng.IntN(2)&rng.IntN(2)]
			i++
		}
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

// FloorResult is what [Floor] measured.
type FloorResult struct {
	// Duration is the wall time.
	Duration time.Duration
	// Bytes counts the uncompressed bytes hashed.
	Bytes int64
}

// Floor measures the least work any converter must do on src: decompress
// every layer and SHA-256 every uncompressed byte, workers layers at a time
// (0 means GOMAXPROCS), with the decompressors [Convert] uses. Comparing a
// conversion with it shows the converter's own overhead.
func Floor(ctx context.Context, src *Source, workers int) (FloorResult, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	var total counter
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, l := range src.layers {
		g.Go(func() error {
			rc, err := l.open()
			if err != nil {
				return err
			}
			defer rc.Close()
			tr, closeZ, err := decompress(bufio.NewReaderSize(ctxReader{ctx: ctx, r: rc}, readBufSize))
			if err != nil {
				return err
			}
			defer closeZ()
			h := sha256.New()
			n, err := io.CopyBuffer(h, tr, make([]byte, 1<<20))
			total.add(n)
			return err
		})
	}
	err := g.Wait()
	return FloorResult{Duration: time.Since(start), Bytes: total.Load()}, err
}
