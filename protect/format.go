package protect

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Format constants; docs/formats.md gives the layout.
const (
	// Magic opens every protected file.
	Magic = "CLOISTERPF"
	// FormatVersion is the only format version this package reads and writes.
	FormatVersion = 1
	// ChunkSize is the plaintext size of every chunk but the last, in bytes.
	ChunkSize = 64 << 10
	// KeySize is the size of a file key, in bytes.
	KeySize = 32
	// SaltSize is the size of the per-file salt, in bytes.
	SaltSize = 32
	// TagSize is the size of the AES-GCM tag each chunk carries, in bytes.
	TagSize = 16
	// MaxPathLen bounds the length of a protected file's path, in bytes.
	MaxPathLen = 4096
)

// Layout of the header: fixed fields, the path, then the header MAC.
const (
	fixedHeaderSize = len(Magic) + 2 + 8 + SaltSize + 2
	macSize         = sha256.Size
	nonceSize       = 12
)

// Domain-separation labels; docs/formats.md lists them.
const (
	keyInfo   = "cloister-pf-key-v1\x00"
	saltLabel = "cloister-pf-salt-v1"
)

// The errors below classify every error of this package; test with [errors.Is].
var (
	// ErrArgument means a caller passed a key that is not [KeySize] bytes,
	// a path that is not absolute and clean, or a bad limit.
	ErrArgument = errors.New("protect: invalid argument")
	// ErrFormat means the input is not a protected file of format version 1:
	// wrong magic, unknown format version, or a malformed or short header.
	ErrFormat = errors.New("protect: not a protected file")
	// ErrKey means the header did not authenticate: the key is not the one
	// the file was encrypted with, or the header was modified.
	ErrKey = errors.New("protect: wrong key or modified header")
	// ErrPath means the file authenticated but was encrypted for another path:
	// it was moved or copied.
	ErrPath = errors.New("protect: file encrypted for another path")
	// ErrTruncated means chunks are missing at the end of the file.
	ErrTruncated = errors.New("protect: file truncated")
	// ErrCorrupt means a chunk did not authenticate: it was modified,
	// reordered, taken from another file, or data was appended.
	ErrCorrupt = errors.New("protect: chunk failed authentication")
	// ErrTooLarge means the plaintext exceeds the caller's limit.
	ErrTooLarge = errors.New("protect: plaintext too large")
	// ErrSourceChanged means the input of [Encrypt] changed between its two
	// passes; the output must be discarded.
	ErrSourceChanged = errors.New("protect: input changed while encrypting")
)

// header is the parsed header of a protected file.
type header struct {
	version uint64
	salt    [SaltSize]byte
	path    string
}

// headerSize returns the size in bytes of a header for a path of n bytes.
func headerSize(n int) int { return fixedHeaderSize + n + macSize }

// EncryptedSize returns the size in bytes of the protected file that
// encrypting plaintextSize bytes for path produces. It is what a tar header
// for the file needs before the file is written.
func EncryptedSize(plaintextSize int64, path string) int64 {
	chunks := max(1, (plaintextSize+ChunkSize-1)/ChunkSize)
	return int64(headerSize(len(path))) + plaintextSize + chunks*TagSize
}

// marshal returns the header bytes, ending in their MAC under macKey.
func (h *header) marshal(macKey []byte) []byte {
	b := make([]byte, 0, headerSize(len(h.path)))
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, FormatVersion)
	b = binary.BigEndian.AppendUint64(b, h.version)
	b = append(b, h.salt[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.path)))
	b = append(b, h.path...)
	mac := hmac.New(sha256.New, macKey)
	mac.Write(b)
	return mac.Sum(b)
}

// fileKeys are the keys derived for one file.
type fileKeys struct {
	aead   cipher.AEAD
	macKey []byte
}

// deriveKeys derives the per-file AES-256-GCM key and header MAC key:
// HKDF-SHA256(secret = key, salt = salt, info = keyInfo ‖ path), 64 bytes.
func deriveKeys(key []byte, salt *[SaltSize]byte, path string) (*fileKeys, error) {
	okm, err := hkdf.Key(sha256.New, key, salt[:], keyInfo+path, 64)
	if err != nil {
		return nil, fmt.Errorf("protect: deriving file key: %w", err)
	}
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, fmt.Errorf("protect: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("protect: %w", err)
	}
	return &fileKeys{aead: aead, macKey: okm[32:]}, nil
}

// chunkAD returns the additional data of every chunk after the header
// hdr: SHA-256(hdr) followed by one flag byte, which callers set to 1 for
// the final chunk.
func chunkAD(hdr []byte) []byte {
	sum := sha256.Sum256(hdr)
	return append(sum[:], 0)
}

// DeriveSalt returns the deterministic salt of a file: HMAC-SHA256(key,
// "cloister-pf-salt-v1" ‖ path ‖ version as 8 big-endian bytes ‖
// plaintextSHA256). Distinct plaintexts, paths or versions give distinct
// salts, hence distinct per-file keys; see docs/formats.md.
func DeriveSalt(key []byte, path string, version uint64, plaintextSHA256 [sha256.Size]byte) ([SaltSize]byte, error) {
	var salt [SaltSize]byte
	if err := checkArgs(key, path); err != nil {
		return salt, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(saltLabel))
	mac.Write([]byte(path))
	mac.Write(binary.BigEndian.AppendUint64(nil, version))
	mac.Write(plaintextSHA256[:])
	mac.Sum(salt[:0])
	return salt, nil
}

// checkArgs checks a file key and path passed by a caller.
func checkArgs(key []byte, p string) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w: key: expected %d bytes, found %d", ErrArgument, KeySize, len(key))
	}
	switch {
	case len(p) > MaxPathLen:
		return fmt.Errorf("%w: path: expected at most %d bytes, found %d", ErrArgument, MaxPathLen, len(p))
	case p == "" || p[0] != '/' || p == "/" || strings.IndexByte(p, 0) >= 0 || path.Clean(p) != p:
		return fmt.Errorf("%w: path %q: expected an absolute, clean file path without NUL", ErrArgument, p)
	}
	return nil
}
