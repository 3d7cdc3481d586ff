package enclave

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
)

// FormatVersion is the only enclave manifest format version this package
// reads and writes; [Manifest.Version] must equal it. Version 2 records each
// protected file's mode and owner and the directories above it
// ([Manifest.ProtectedDirs]), and keeps the encrypted copies apart from the
// paths the application reads ([Manifest.EncryptedDir]); manifests of
// version 1 are refused with a request to convert the image again.
const FormatVersion = 2

// MaxSize bounds a signed enclave manifest file, in bytes (64 MiB).
const MaxSize = 64 << 20

// The errors below classify every error [Parse], [ParseKey] and
// [Manifest.Validate] return; test with [errors.Is].
var (
	// ErrTooLarge means the input is larger than its bound.
	ErrTooLarge = errors.New("enclave: input too large")
	// ErrMalformed means the input is not well-formed: bad JSON, an unknown
	// or duplicate key, trailing data, bad hex, or a bad PEM block.
	ErrMalformed = errors.New("enclave: malformed input")
	// ErrSignature means the signature does not verify over the manifest bytes.
	ErrSignature = errors.New("enclave: signature does not verify")
	// ErrInvalid means the input is well-formed but breaks a rule: a manifest
	// field out of range, or a key that is not RSA-3072 with exponent 3.
	ErrInvalid = errors.New("enclave: invalid")
)

// Manifest is the enclave manifest of one confidential image. The zero value
// is not valid; see [Manifest.Validate] for the rules. A Manifest is a plain
// value: its methods only read it, so it is safe for concurrent use as long as
// nobody modifies it.
type Manifest struct {
	// Version is the format version, [FormatVersion].
	Version int `json:"version"`
	// ISVProdID is the product ID of the enclave, as in SGX.
	ISVProdID uint16 `json:"isvprodid"`
	// ISVSVN is the security version number of the enclave, as in SGX.
	ISVSVN uint16 `json:"isvsvn"`
	// Argv is the trusted argument vector: the image's Entrypoint followed by
	// its Cmd. It is not empty and Argv[0] is not empty.
	Argv []string `json:"argv"`
	// Env is the fixed environment from the image, by name.
	Env map[string]string `json:"env,omitempty"`
	// AllowEnv lists the host environment variables the application may
	// receive: exact names, or a prefix followed by "*" ("LC_*"). A lone "*"
	// admits every host variable.
	AllowEnv []string `json:"allow_env,omitempty"`
	// WorkingDir is the absolute working directory; empty means "/".
	WorkingDir string `json:"working_dir,omitempty"`
	// User is the image's user as in an OCI config: "name", "uid",
	// "name:group" or "uid:gid"; empty means root.
	User string `json:"user,omitempty"`
	// Files are the trusted regular files, sorted by path (byte order),
	// with unique absolute clean paths.
	Files []File `json:"files"`
	// ProtectedFiles are the encrypted files, sorted by path, with unique
	// absolute clean paths that are not also in Files. Each path is, in the
	// image, a symbolic link to [Manifest.PlaintextPath] of itself; its
	// encrypted copy is at [Manifest.EncryptedPath] of itself.
	ProtectedFiles []ProtectedFile `json:"protected_files,omitempty"`
	// ProtectedDirs are the directories the launcher recreates under
	// PlaintextDir, with their modes and owners: exactly every directory
	// (below "/") that holds a protected file or such a directory, sorted by
	// path. Empty when ProtectedFiles is.
	ProtectedDirs []Directory `json:"protected_dirs,omitempty"`
	// EncryptedDir is the directory that holds the encrypted copies of the
	// protected files, each at EncryptedDir followed by its path
	// ([EncryptedDirDefault] in a converted image). Set exactly when
	// ProtectedFiles is not empty.
	EncryptedDir string `json:"encrypted_dir,omitempty"`
	// PlaintextDir is the memory-backed directory the launcher decrypts
	// protected files into, each at PlaintextDir followed by its path
	// ([ProtectedDir] in a converted image). Set exactly when ProtectedFiles
	// is not empty.
	PlaintextDir string `json:"plaintext_dir,omitempty"`
	// Exclude lists the patterns of paths that are deliberately not measured:
	// a path.Match pattern ("/tmp/*.log") or a directory prefix ending in "/"
	// ("/var/cache/"). Patterns are absolute. See [Manifest.Excluded].
	Exclude []string `json:"exclude,omitempty"`
	// Volumes are the encrypted volumes, sorted by path: writable
	// directories that Gramine mounts encrypted with a key the Coordinator
	// delivers. Nothing below them is measured or protected.
	Volumes []Volume `json:"volumes,omitempty"`
	// EnclaveTmpfs are the directories the image's Gramine manifest mounts as
	// in-enclave tmpfs (fs.mounts entries of type "tmpfs"), sorted, unique,
	// absolute and clean; the converter writes both from this list. Inside
	// Gramine, whose statfs names no file system type, the launcher takes a
	// directory for memory-backed storage only at or below one of these
	// (see [Manifest.InEnclaveTmpfs]). A converted image lists [DeliveredDir]
	// and, with protected files, PlaintextDir.
	EnclaveTmpfs []string `json:"enclave_tmpfs,omitempty"`
	// Coordinator, when set, is the Coordinator identity the launcher accepts.
	Coordinator *Coordinator `json:"coordinator,omitempty"`
	// Launcher, when set, is the launcher binary the manifest was made for; in
	// simulation a launcher that is this binary measures itself from the record
	// (see [Launcher]).
	Launcher *Launcher `json:"launcher,omitempty"`
	// EnclaveSize is the enclave size as Gramine writes it: a power of two
	// with an optional K, M, G or T suffix ("1G"); empty means the converter
	// default.
	EnclaveSize string `json:"enclave_size,omitempty"`
	// Threads is the maximum number of enclave threads, 0..[MaxThreads];
	// 0 means the converter default.
	Threads int `json:"threads,omitempty"`
}

// MaxThreads bounds [Manifest.Threads].
const MaxThreads = 4096

// File is one trusted regular file.
type File struct {
	// Path is the absolute, clean path of the file inside the image.
	Path string `json:"path"`
	// SHA256 is the SHA-256 digest of the file's contents.
	SHA256 Digest `json:"sha256"`
	// Size is the file's size in bytes.
	Size int64 `json:"size"`
}

// ProtectedFile is one file stored encrypted in the protect format.
type ProtectedFile struct {
	// Path is the absolute, clean path of the file inside the image; the
	// encryption binds it.
	Path string `json:"path"`
	// Key names the Coordinator secret that holds the 32-byte file key.
	Key string `json:"key"`
	// Size is the plaintext size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the SHA-256 digest of the encrypted file as stored in the image.
	SHA256 Digest `json:"sha256"`
	// Version is the version number the encryption binds, so that an older
	// encrypted copy of the file cannot be swapped in.
	Version uint64 `json:"version"`
	// Mode holds the file's permission bits as in the original image,
	// setuid, setgid and sticky included; the launcher gives the plaintext
	// exactly this mode.
	Mode Mode `json:"mode"`
	// UID and GID are the file's numeric owner and group as in the original
	// image's tar header; 4294967295 (-1 to chown) is not allowed.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Directory is one directory above protected files, as in the original
// image (or 0755 and root when no layer has an entry for it).
type Directory struct {
	// Path is the absolute, clean path of the directory.
	Path string `json:"path"`
	// Mode, UID and GID are as for [ProtectedFile].
	Mode Mode   `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
}

// Volume is one encrypted volume: a directory the application writes, which
// Gramine mounts encrypted ("type = encrypted" in fs.mounts) so that its data
// reaches the host's disk only as ciphertext.
type Volume struct {
	// Path is the absolute, clean mount point.
	Path string `json:"path"`
	// Key names the Coordinator secret that holds the volume's 32-byte key;
	// the workload lists it in file_keys.
	Key string `json:"key"`
	// Seed is set when the image held content at Path (a data directory
	// initialised at build time): the converter moved it to [SeedPath] of
	// Path, where its files are trusted files, and the launcher copies it
	// into the volume once, on the first start that finds the volume empty.
	Seed bool `json:"seed,omitempty"`
	// Mode, UID and GID are the directory's in the original image (0755 and
	// root when it had none); the launcher gives them to the volume when it
	// seeds it.
	Mode Mode   `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
}

// SeedPath returns where the image content of the seeded volume at p is
// stored: [SeedDir] followed by p.
func SeedPath(p string) string { return SeedDir + p }

// PlaintextBytes is how much memory-backed storage the protected files'
// plaintext takes under PlaintextDir: each file and directory rounded up to
// whole 4 KiB pages, as tmpfs allocates them.
func (m *Manifest) PlaintextBytes() int64 {
	const page = 4096
	var n int64
	for _, f := range m.ProtectedFiles {
		n += (f.Size + page - 1) / page * page
	}
	return n + int64(len(m.ProtectedDirs))*page
}

// EncryptedDirDefault is [Manifest.EncryptedDir] in a converted image.
const EncryptedDirDefault = ReservedDir + "/protected"

// EncryptedPath returns where the encrypted copy of the protected file p is
// stored: EncryptedDir followed by p.
func (m *Manifest) EncryptedPath(p string) string { return m.EncryptedDir + p }

// PlaintextPath returns where the launcher decrypts the protected file p to,
// and where the symbolic link at p points: PlaintextDir followed by p.
func (m *Manifest) PlaintextPath(p string) string { return m.PlaintextDir + p }

// Mode is the permission bits of a file or directory (at most 0o7777: no
// file type). In JSON it is a string of exactly four octal digits ("0644",
// "4755"); decoding anything else is an error wrapping [ErrMalformed].
type Mode uint32

// MaxMode is the largest valid [Mode]: every permission bit with setuid,
// setgid and sticky.
const MaxMode Mode = 0o7777

// String returns m as four octal digits.
func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalText returns m as four octal digits; it fails for a mode above
// [MaxMode].
func (m Mode) MarshalText() ([]byte, error) {
	if m > MaxMode {
		return nil, fmt.Errorf("%w: mode %o: expected at most 7777", ErrInvalid, uint32(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText sets m from exactly four octal digits.
func (m *Mode) UnmarshalText(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%w: mode: expected four octal digits, found %d characters", ErrMalformed, len(b))
	}
	var v uint32
	for _, c := range b {
		if c < '0' || c > '7' {
			return fmt.Errorf("%w: mode: expected four octal digits, found %q", ErrMalformed, c)
		}
		v = v<<3 | uint32(c-'0')
	}
	*m = Mode(v)
	return nil
}

// Coordinator is the Coordinator identity a launcher accepts: any MRENCLAVE
// in the list, or the MRSIGNER with the product ID and at least the minimum
// security version. At least one of MRENCLAVE and MRSIGNER is set.
type Coordinator struct {
	// MRENCLAVE lists accepted enclave measurements.
	MRENCLAVE []Digest `json:"mrenclave,omitempty"`
	// MRSIGNER is the accepted signer; the zero value means none.
	MRSIGNER Digest `json:"mrsigner,omitzero"`
	// ISVProdID is the product ID required with MRSIGNER.
	ISVProdID uint16 `json:"isvprodid,omitempty"`
	// MinISVSVN is the lowest security version accepted with MRSIGNER.
	MinISVSVN uint16 `json:"min_isvsvn,omitempty"`
}

// Accepts returns nil if an enclave with this identity is an accepted
// Coordinator, and otherwise an error wrapping [ErrInvalid] that says what
// was expected and what was found.
func (c *Coordinator) Accepts(mrenclave, mrsigner [32]byte, isvprodid, isvsvn uint16) error {
	for _, d := range c.MRENCLAVE {
		if d == mrenclave {
			return nil
		}
	}
	if !c.MRSIGNER.IsZero() && c.MRSIGNER == mrsigner {
		if isvprodid != c.ISVProdID {
			return fmt.Errorf("%w: coordinator isvprodid %d, expected %d", ErrInvalid, isvprodid, c.ISVProdID)
		}
		if isvsvn < c.MinISVSVN {
			return fmt.Errorf("%w: coordinator isvsvn %d, expected at least %d", ErrInvalid, isvsvn, c.MinISVSVN)
		}
		return nil
	}
	want := "none"
	if !c.MRSIGNER.IsZero() {
		want = c.MRSIGNER.String()
	}
	return fmt.Errorf("%w: coordinator mrenclave %x and mrsigner %x not accepted; expected mrenclave in %v or mrsigner %s",
		ErrInvalid, mrenclave, mrsigner, c.MRENCLAVE, want)
}

// Excluded reports whether p matches one of the manifest's Exclude patterns.
func (m *Manifest) Excluded(p string) bool {
	for _, pat := range m.Exclude {
		if strings.HasSuffix(pat, "/") {
			if strings.HasPrefix(p, pat) {
				return true
			}
		} else if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// Digest is a SHA-256 digest. In JSON it is a string of 64 lowercase hex
// digits; decoding anything else is an error wrapping [ErrMalformed].
type Digest [32]byte

// String returns d as 64 lowercase hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is all zeros, which no real file has; it marks
// an unset digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText returns d as 64 lowercase hex digits.
func (d Digest) MarshalText() ([]byte, error) {
	return hex.AppendEncode(make([]byte, 0, 2*len(d)), d[:]), nil
}

// UnmarshalText sets d from exactly 64 lowercase hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	return decodeHex(d[:], b, "sha-256 digest")
}

// decodeHex fills dst from lowercase hex text of exactly 2*len(dst) digits.
func decodeHex(dst, text []byte, what string) error {
	if len(text) != 2*len(dst) {
		return fmt.Errorf("%w: %s: expected %d lowercase hex digits, found %d characters",
			ErrMalformed, what, 2*len(dst), len(text))
	}
	for i, c := range text {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: %s: expected lowercase hex digits, found %q at offset %d",
				ErrMalformed, what, c, i)
		}
	}
	_, err := hex.Decode(dst, text)
	return err
}
