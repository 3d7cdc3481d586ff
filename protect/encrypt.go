package protect

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// chunkBufs are the working buffers of one Encrypt or Decrypt call.
type chunkBufs struct {
	a, b, out [ChunkSize + TagSize]byte
}

var bufPool = sync.Pool{New: func() any { return new(chunkBufs) }}

func getBufs() *chunkBufs { return bufPool.Get().(*chunkBufs) }

// putBufs wipes the buffers, which held plaintext, and returns them.
func putBufs(b *chunkBufs) {
	clear(b.a[:])
	clear(b.b[:])
	clear(b.out[:])
	bufPool.Put(b)
}

// castagnoli returns the CRC-32C table, made on first use: making it costs every start of the
// launcher, which links this package but only decrypts, a few hundred microseconds.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Encrypt writes to w the protected file of the plaintext that r yields from
// its current offset to its end, for the file path (absolute and clean) at
// the given version, under the [KeySize]-byte key. The output is
// deterministic: the salt is [DeriveSalt] of the plaintext's SHA-256, so
// Encrypt reads r twice, seeking back in between. A CRC-32C of each pass
// catches an input that changed in between, in which case Encrypt returns
// [ErrSourceChanged] and the output, already written, must be discarded.
//
// Errors wrap [ErrArgument], [ErrSourceChanged], or an I/O error of r or w.
func Encrypt(w io.Writer, r io.ReadSeeker, key []byte, path string, version uint64) error {
	if err := checkArgs(key, path); err != nil {
		return err
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("protect: reading plaintext: %w", err)
	}
	bufs := getBufs()
	defer putBufs(bufs)

	h, crc := sha256.New(), crc32.New(castagnoli())
	var n int64
	for {
		k, err := r.Read(bufs.a[:])
		h.Write(bufs.a[:k])
		crc.Write(bufs.a[:k])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("protect: reading plaintext: %w", err)
		}
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("protect: reading plaintext: %w", err)
	}
	salt, err := DeriveSalt(key, path, version, [sha256.Size]byte(h.Sum(nil)))
	if err != nil {
		return err
	}

	again := crc32.New(castagnoli())
	var m int64
	err = seal(w, r, key, path, version, &salt, bufs, func(p []byte) {
		again.Write(p)
		m += int64(len(p))
	})
	if err != nil {
		return err
	}
	if m != n || again.Sum32() != crc.Sum32() {
		return fmt.Errorf("%w: first pass read %d bytes, second pass %d bytes with a different checksum",
			ErrSourceChanged, n, m)
	}
	return nil
}

// EncryptWithSalt is [Encrypt] in a single pass over r with a salt the
// caller chooses: random bytes for a file that should not be reproducible,
// or [DeriveSalt] of a plaintext digest the caller already knows. A salt
// must never be reused for a different plaintext under the same key, path
// and version; with a random salt the output differs on every call.
//
// Errors wrap [ErrArgument] or an I/O error of r or w.
func EncryptWithSalt(w io.Writer, r io.Reader, key []byte, path string, version uint64, salt [SaltSize]byte) error {
	if err := checkArgs(key, path); err != nil {
		return err
	}
	bufs := getBufs()
	defer putBufs(bufs)
	return seal(w, r, key, path, version, &salt, bufs, nil)
}

// seal writes the header and the sealed chunks of r, calling observe (if
// not nil) with each plaintext chunk before it is sealed.
func seal(w io.Writer, r io.Reader, key []byte, path string, version uint64, salt *[SaltSize]byte,
	bufs *chunkBufs, observe func([]byte)) error {
	keys, err := deriveKeys(key, salt, path)
	if err != nil {
		return err
	}
	hdr := (&header{version: version, salt: *salt, path: path}).marshal(keys.macKey)
	if err := write(w, hdr); err != nil {
		return err
	}
	ad := chunkAD(hdr)
	var nb [nonceSize]byte
	cur, next := bufs.a[:], bufs.b[:]
	n, err := readChunk(r, cur[:ChunkSize])
	if err != nil {
		return err
	}
	for i := uint64(0); ; i++ {
		final := n < ChunkSize
		m := 0
		if !final {
			// Look one chunk ahead: a full chunk is final if nothing follows.
			if m, err = readChunk(r, next[:ChunkSize]); err != nil {
				return err
			}
			final = m == 0
		}
		if observe != nil {
			observe(cur[:n])
		}
		setFinal(ad, final)
		if err := write(w, keys.aead.Seal(cur[:0], putNonce(&nb, i), cur[:n], ad)); err != nil {
			return err
		}
		if final {
			return nil
		}
		cur, next, n = next, cur, m
	}
}

// readChunk fills buf from r and returns how many bytes it read; a short
// count with a nil error means r ended.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("protect: reading: %w", err)
	}
	return n, nil
}

// write writes all of b to w.
func write(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("protect: writing: %w", err)
	}
	return nil
}

// putNonce sets nb to the nonce of chunk i: four zero bytes, then i as
// eight big-endian bytes.
func putNonce(nb *[nonceSize]byte, i uint64) []byte {
	binary.BigEndian.PutUint64(nb[4:], i)
	return nb[:]
}

// setFinal sets the flag byte that ends the additional data.
func setFinal(ad []byte, final bool) {
	ad[len(ad)-1] = 0
	if final {
		ad[len(ad)-1] = 1
	}
}
