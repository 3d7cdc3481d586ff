package image

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// gzipLevel is the compression level of the layers the converter writes:
// the fastest, since conversion speed matters more than a few percent of
// layer size. The output is a function of the input only (no timestamps,
// no names in the gzip header), so conversions are reproducible.
const gzipLevel = gzip.BestSpeed

// layerWriter writes a tar stream, gzip-compressed, to a new file, hashing
// both the tar stream (the diff ID) and the compressed bytes (the digest).
type layerWriter struct {
	f      *os.File
	buf    *bufio.Writer
	zw     *gzip.Writer
	tw     *tar.Writer
	diffID hash.Hash
	digest hash.Hash
	size   int64
}

// newLayerWriter creates a layer file in dir, compressed at gzip level.
func newLayerWriter(dir string, level int) (*layerWriter, error) {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return nil, err
	}
	w := &layerWriter{f: f, buf: bufio.NewWriterSize(f, 1<<20), diffID: sha256.New(), digest: sha256.New()}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(w.buf, w.digest, sizeWriter{&w.size}), level)
	if err != nil {
		w.abort()
		return nil, err
	}
	w.zw, w.tw = zw, tar.NewWriter(io.MultiWriter(zw, w.diffID))
	return w, nil
}

// finish ends the streams and returns the layer; the file stays in place.
func (w *layerWriter) finish(mt types.MediaType) (*fileLayer, error) {
	err := w.tw.Close()
	if err == nil {
		err = w.zw.Close()
	}
	if err == nil {
		err = w.buf.Flush()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.f.Name())
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return &fileLayer{
		file: w.f.Name(), size: w.size, mediaType: mt,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.digest.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.diffID.Sum(nil))},
	}, nil
}

// abort removes the unfinished layer file.
func (w *layerWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

type sizeWriter struct{ n *int64 }

func (s sizeWriter) Write(p []byte) (int, error) {
	*s.n += int64(len(p))
	return len(p), nil
}

// fileLayer is a layer the converter wrote to a file.
type fileLayer struct {
	file           string
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
}

var _ partial.CompressedLayer = (*fileLayer)(nil)

// The methods of fileLayer and blobLayer implement partial.CompressedLayer
// and DiffID; blobFile names the file that holds the blob, if any.

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.file) }
func (l *fileLayer) blobFile() string                    { return l.file }
func (l *fileLayer) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.mediaType, Size: l.size, Digest: l.digest}
}

// blobLayer is an unchanged layer of the source, copied as it is stored.
type blobLayer struct{ src *srcLayer }

var _ partial.CompressedLayer = blobLayer{}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.src.desc.Digest, nil }
func (l blobLayer) DiffID() (v1.Hash, error)            { return l.src.diffID, nil }
func (l blobLayer) Size() (int64, error)                { return l.src.desc.Size, nil }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.src.desc.MediaType, nil }
func (l blobLayer) Compressed() (io.ReadCloser, error)  { return l.src.open() }
func (l blobLayer) Descriptor() (*v1.Descriptor, error) { d := l.src.desc; return &d, nil }
func (l blobLayer) blobFile() string                    { return l.src.file }
