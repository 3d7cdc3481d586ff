package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression formats of layer blobs, told apart by their magic numbers.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// zstdMaxWindow bounds the window a zstd layer may ask for, so that a
// hostile frame header cannot make the decoder allocate gigabytes. zstd
// uses at most 8 MiB below level 19 without --long.
const zstdMaxWindow = 32 << 20

// readBufSize is the buffer between a blob and its decompressor.
const readBufSize = 256 << 10

// decompress returns the uncompressed stream of the blob br, recognizing
// gzip and zstd by their magic numbers; anything else is taken as an
// uncompressed tar. close releases the decompressor.
func decompress(br *bufio.Reader) (r io.Reader, close func(), err error) {
	magic, _ := br.Peek(len(zstdMagic))
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, unsafef("gzip stream: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, unsafef("zstd stream: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// layerMediaType returns the media type of a blob whose first bytes are
// magic, in the family (OCI or Docker) of the manifest media type mt.
func layerMediaType(magic []byte, mt types.MediaType) types.MediaType {
	oci := mt != types.DockerManifestSchema2
	switch {
	case bytes.HasPrefix(magic, gzipMagic) && oci:
		return types.OCILayer
	case bytes.HasPrefix(magic, gzipMagic):
		return types.DockerLayer
	case bytes.HasPrefix(magic, zstdMagic):
		return types.OCILayerZStd
	case oci:
		return types.OCIUncompressedLayer
	}
	return types.DockerUncompressedLayer
}

// readLayer opens layer l, decompresses it and calls fn with the tar
// stream, bounded by lim.MaxLayerSize. Afterwards it reads both streams to
// their ends (checking the compression's own checksums) and checks the
// blob's size and SHA-256 against l.desc; a layer whose digest was unknown
// gets the digest, size and media type of what was read. Compressed bytes
// are counted into read. ctx cancels the reading.
func readLayer(ctx context.Context, l *srcLayer, mt types.MediaType, lim *Limits, read *counter, fn func(io.Reader) error) error {
	rc, err := l.open()
	if err != nil {
		return fmt.Errorf("opening blob: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	var n counter
	blob := io.TeeReader(ctxReader{ctx: ctx, r: countingReader{r: rc, n: &n}}, multiCounter{h: h, c: read})
	br := bufio.NewReaderSize(blob, readBufSize)
	magic, _ := br.Peek(len(zstdMagic))
	magic = bytes.Clone(magic)
	tr, closeZ, err := decompress(br)
	if err != nil {
		return err
	}
	defer closeZ()
	lr := &limitedReader{r: tr, max: lim.MaxLayerSize}
	if err := fn(lr); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return readError("reading past the end of the tar stream", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("reading blob: %w", err)
	}
	return l.checkDigest(h, n.Load(), magic, mt)
}

// checkDigest compares what was read with l.desc, or fills l.desc in.
func (l *srcLayer) checkDigest(h hash.Hash, size int64, magic []byte, mt types.MediaType) error {
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if l.desc.Digest == (v1.Hash{}) {
		l.desc.Digest, l.desc.Size = got, size
		if l.desc.MediaType == "" {
			l.desc.MediaType = layerMediaType(magic, mt)
		}
		return nil
	}
	if l.desc.Digest != got || l.desc.Size != size {
		return unsafef("the blob does not match its descriptor: expected %s (%d bytes), found %s (%d bytes)",
			l.desc.Digest, l.desc.Size, got, size)
	}
	return nil
}

// multiCounter is a writer that hashes and counts what it is given.
type multiCounter struct {
	h hash.Hash
	c *counter
}

func (m multiCounter) Write(p []byte) (int, error) {
	m.h.Write(p)
	m.c.add(int64(len(p)))
	return len(p), nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// limitedReader fails with an error wrapping [ErrLimit] once more than max
// bytes have been read.
type limitedReader struct {
	r      io.Reader
	max, n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	k, err := l.r.Read(p)
	l.n += int64(k)
	if l.n > l.max {
		return k, limitf("layer larger than %d bytes uncompressed", l.max)
	}
	return k, err
}

// readError describes a failure to read a layer stream: an error wrapping
// [ErrUnsafe] (a malformed stream), unless it is already a limit or a
// cancellation, which keep their own class.
func readError(what string, err error) error {
	if errors.Is(err, ErrLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return unsafef("%s: %w", what, err)
}
