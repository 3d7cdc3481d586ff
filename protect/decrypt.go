package protect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Decrypt reads a protected file from r, checks it was encrypted under key
// for path, and writes the plaintext to w. It returns the file's version
// number, which the caller compares with the one the enclave manifest
// records.
//
// Decrypt streams: it writes each chunk as soon as that chunk is
// authenticated, so after an error w may hold a prefix of the plaintext,
// which the caller must discard. [DecryptAll] does that itself.
//
// Errors wrap [ErrArgument], [ErrFormat], [ErrKey], [ErrPath],
// [ErrTruncated], [ErrCorrupt], or an I/O error of r or w.
func Decrypt(w io.Writer, r io.Reader, key []byte, path string) (version uint64, err error) {
	if err := checkArgs(key, path); err != nil {
		return 0, err
	}
	hdr, h, err := readHeader(r)
	if err != nil {
		return 0, err
	}
	// Authenticate the header under its own path first, so that a moved
	// file and a wrong key give different errors.
	keys, err := deriveKeys(key, &h.salt, h.path)
	if err != nil {
		return 0, err
	}
	mac := hmac.New(sha256.New, keys.macKey)
	mac.Write(hdr[:len(hdr)-macSize])
	if !hmac.Equal(mac.Sum(nil), hdr[len(hdr)-macSize:]) {
		return 0, fmt.Errorf("%w: the header does not authenticate under this key", ErrKey)
	}
	if h.path != path {
		return 0, fmt.Errorf("%w: encrypted for %q, opened as %q", ErrPath, h.path, path)
	}

	bufs := getBufs()
	defer putBufs(bufs)
	ad := chunkAD(hdr)
	var nb [nonceSize]byte
	cur, next := bufs.a[:], bufs.b[:]
	n, err := readChunk(r, cur)
	if err != nil {
		return 0, err
	}
	for i := uint64(0); ; i++ {
		if n < TagSize {
			return 0, fmt.Errorf("%w: chunk %d has %d bytes, expected at least a %d-byte tag", ErrTruncated, i, n, TagSize)
		}
		final := n < len(cur)
		m := 0
		if !final {
			if m, err = readChunk(r, next); err != nil {
				return 0, err
			}
			final = m == 0
		}
		pt, err := openChunk(keys, putNonce(&nb, i), i, cur[:n], ad, final, bufs.out[:0])
		if err != nil {
			return 0, err
		}
		if err := write(w, pt); err != nil {
			return 0, err
		}
		if final {
			return h.version, nil
		}
		cur, next, n = next, cur, m
	}
}

// openChunk opens chunk i into out. When that fails it tries the opposite
// final flag, to tell a truncated file or appended data from a bad chunk.
func openChunk(keys *fileKeys, nonce []byte, i uint64, ct, ad []byte, final bool, out []byte) ([]byte, error) {
	setFinal(ad, final)
	pt, err := keys.aead.Open(out, nonce, ct, ad)
	if err == nil {
		return pt, nil
	}
	setFinal(ad, !final)
	_, otherErr := keys.aead.Open(out, nonce, ct, ad)
	switch {
	case otherErr == nil && final:
		return nil, fmt.Errorf("%w: the file ends after chunk %d, which is not its final chunk", ErrTruncated, i)
	case otherErr == nil:
		return nil, fmt.Errorf("%w: data follows the final chunk %d", ErrCorrupt, i)
	case final:
		return nil, fmt.Errorf("%w: final chunk %d (modified or cut short)", ErrCorrupt, i)
	}
	return nil, fmt.Errorf("%w: chunk %d (modified, reordered, or taken from another file)", ErrCorrupt, i)
}

// readHeader reads and parses a header, returning its bytes (MAC included).
func readHeader(r io.Reader) ([]byte, *header, error) {
	b := make([]byte, fixedHeaderSize, headerSize(MaxPathLen))
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%w: expected a header of at least %d bytes, found fewer", ErrFormat, fixedHeaderSize)
		}
		return nil, nil, fmt.Errorf("protect: reading header: %w", err)
	}
	// Never quote the bytes found: a plaintext file here would leak secrets.
	if string(b[:len(Magic)]) != Magic {
		return nil, nil, fmt.Errorf("%w: expected magic %q, found other bytes", ErrFormat, Magic)
	}
	off := len(Magic)
	if v := binary.BigEndian.Uint16(b[off:]); v != FormatVersion {
		return nil, nil, fmt.Errorf("%w: expected format version %d, found %d", ErrFormat, FormatVersion, v)
	}
	off += 2
	h := &header{version: binary.BigEndian.Uint64(b[off:])}
	off += 8
	off += copy(h.salt[:], b[off:])
	pathLen := int(binary.BigEndian.Uint16(b[off:]))
	if pathLen == 0 || pathLen > MaxPathLen {
		return nil, nil, fmt.Errorf("%w: expected a path length of 1..%d, found %d", ErrFormat, MaxPathLen, pathLen)
	}
	b = b[:headerSize(pathLen)]
	if _, err := io.ReadFull(r, b[fixedHeaderSize:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%w: the file ends inside its %d-byte header", ErrTruncated, len(b))
		}
		return nil, nil, fmt.Errorf("protect: reading header: %w", err)
	}
	h.path = string(b[fixedHeaderSize : fixedHeaderSize+pathLen])
	return b, h, nil
}

// DecryptAll is [Decrypt] into memory: it returns the whole plaintext, of
// at most limit bytes, and the file's version. On any error it wipes what
// it had decrypted and returns nil. Errors are those of Decrypt, plus
// [ErrTooLarge] beyond limit and [ErrArgument] for a negative limit.
func DecryptAll(r io.Reader, key []byte, path string, limit int64) ([]byte, uint64, error) {
	if limit < 0 {
		return nil, 0, fmt.Errorf("%w: limit: expected at least 0, found %d", ErrArgument, limit)
	}
	b := &boundedBuffer{limit: limit}
	version, err := Decrypt(b, r, key, path)
	if err != nil {
		clear(b.buf)
		return nil, 0, err
	}
	return b.buf, version, nil
}

// boundedBuffer collects at most limit bytes, wiping each buffer it outgrows.
type boundedBuffer struct {
	buf   []byte
	limit int64
}

// Write appends p, or fails with [ErrTooLarge] beyond the limit.
func (b *boundedBuffer) Write(p []byte) (int, error) {
	need := int64(len(b.buf)) + int64(len(p))
	if need > b.limit {
		return 0, fmt.Errorf("%w: expected at most %d bytes of plaintext, found more", ErrTooLarge, b.limit)
	}
	if need > int64(cap(b.buf)) {
		grown := make([]byte, len(b.buf), min(max(need, 2*int64(cap(b.buf))), b.limit))
		copy(grown, b.buf)
		clear(b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
