package image

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
)

// Defaults of [Config].
const (
	// DefaultKeyName names the deployment-manifest secret that holds the
	// protected-file key.
	DefaultKeyName = "protected_files_key"
	// DefaultVolumeKeyName names the deployment-manifest secret that holds
	// the encrypted volumes' key.
	DefaultVolumeKeyName = "volume_key"
	// DefaultEnclaveSize is the enclave size written to the enclave and
	// Gramine manifests.
	DefaultEnclaveSize = "1G"
	// DefaultThreads is the maximum number of enclave threads.
	DefaultThreads = 16
	// DefaultGramineLibDir is where Gramine's Debian and Ubuntu packages
	// install libsysdb.so.
	DefaultGramineLibDir = "/usr/lib/x86_64-linux-gnu/gramine"
)

// DefaultExclude lists the paths every converted image leaves unmeasured:
// files and mount points the container runtime replaces at run time.
var DefaultExclude = []string{"/dev/", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc/", "/sys/"}

// Config says how to convert an image. SignKey and Launcher are required;
// FileKey is required when Protect is not empty. A Config is not modified
// by [Convert].
type Config struct {
	// Protect lists the paths to encrypt: files, or directories whose
	// regular files are all encrypted. Paths are resolved through the
	// image's symbolic links. Every layer holding one of them, or an older
	// version of one (at the path as given, at any form its symbolic links
	// expand to, or below a protected directory), is rewritten without it.
	// A conversion that would leave a protected file's plaintext anywhere
	// else fails with [ErrPlaintext]: a hard link or an identical copy at
	// an unprotected path, a symbolic link in a protected directory to an
	// unprotected file, or, for files of 8 bytes to 4 KiB (white space
	// trimmed), the content in the image configuration or the enclave
	// manifest.
	Protect []string
	// KeyName names the deployment-manifest secret that holds FileKey.
	// Default [DefaultKeyName].
	KeyName string
	// FileKey is the 32-byte protected-file key.
	FileKey []byte
	// ProtectVersion is the version bound into every protected file; 0 means 1.
	ProtectVersion uint64
	// Exclude lists more paths not to measure, as in the enclave manifest:
	// path.Match patterns ("/var/log/*.log") or directory prefixes ending in
	// "/" ("/tmp/"). [DefaultExclude] is always added.
	Exclude []string
	// AllowEnv lists host environment variables the application may
	// receive: names, prefixes ending in "*", or "*".
	AllowEnv []string
	// Entrypoint and Cmd, when not nil, replace the image's. As with
	// docker run, a new Entrypoint clears the image's Cmd unless Cmd is
	// also given.
	Entrypoint, Cmd *[]string
	// SignKey signs the enclave manifest: RSA-3072 with exponent 3.
	SignKey *rsa.PrivateKey
	// ISVProdID and ISVSVN are the enclave's product ID and security version.
	ISVProdID, ISVSVN uint16
	// EnclaveSize is the enclave size ("1G"); default [DefaultEnclaveSize].
	EnclaveSize string
	// Threads is the maximum number of enclave threads; default [DefaultThreads].
	Threads int
	// Coordinator is the Coordinator identity the launcher accepts; nil
	// leaves the launcher's default, which exists only in simulation.
	Coordinator *enclave.Coordinator
	// Launcher is the path of the cloister-launch binary to add.
	Launcher string
	// EncryptedVolumes lists writable directories that Gramine mounts
	// encrypted with the key VolumeKeyName names, resolved through the
	// image's symbolic links. Each is recorded in the enclave manifest
	// ([enclave.Volume]). When the image holds content there (a data
	// directory initialised at build time), the content moves to
	// [enclave.SeedPath] of the volume, where its regular files are
	// trusted files, and the volume directory is left empty in the image;
	// the launcher copies the seed into the volume on its first start. The
	// seed's plaintext stays in the image's lower layers: it is integrity
	// protected, not confidential. Device nodes and named pipes in a
	// seeded volume are refused.
	EncryptedVolumes []string
	// VolumeKeyName names the deployment-manifest secret that holds the
	// encrypted volumes' 32-byte key, which the Coordinator generates.
	// Default [DefaultVolumeKeyName].
	VolumeKeyName string
	// Writable lists more directories the application writes, resolved
	// through the image's symbolic links; like the image configuration's
	// VOLUME paths, they are not measured (directory-prefix excludes in the
	// enclave manifest) and their content stays in the image. A protected
	// path may not be, contain or lie inside one.
	Writable []string
	// Tmpfs lists directories kept in memory: under Gramine each is an
	// in-enclave tmpfs mount of the Gramine manifest, recorded in the
	// enclave manifest ([enclave.Manifest.EnclaveTmpfs]), where the launcher
	// writes delivered files itself (Gramine's host file system has no
	// symbolic links to link them from elsewhere). The image must hold no
	// measured or protected file there (a mount hides them). In podman,
	// give the container a tmpfs at the same path (podman run --tmpfs).
	Tmpfs []string
	// GramineLibDir is where Gramine is installed in the image that runs
	// the converted one under SGX; default [DefaultGramineLibDir].
	GramineLibDir string
	// TempDir holds the rewritten layers until the Result is closed;
	// default os.TempDir().
	TempDir string
	// Workers is how many layers are read at once; default GOMAXPROCS.
	Workers int
	// RedactHistory replaces the build command (created_by) of every
	// entry of the image's history with [RedactedCreatedBy]. Build tools
	// record build arguments there (BuildKit writes `RUN |1 TOKEN=…`); a
	// conversion whose history holds a protected file's content fails with
	// [ErrPlaintext] unless it is set.
	RedactHistory bool
	// Limits bounds what the layers may hold.
	Limits Limits
}

// withDefaults returns a copy of c with defaults filled in, or every
// problem with it at once.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.KeyName == "" {
		c.KeyName = DefaultKeyName
	}
	if c.VolumeKeyName == "" {
		c.VolumeKeyName = DefaultVolumeKeyName
	}
	if c.ProtectVersion == 0 {
		c.ProtectVersion = 1
	}
	if c.EnclaveSize == "" {
		c.EnclaveSize = DefaultEnclaveSize
	}
	if c.Threads == 0 {
		c.Threads = DefaultThreads
	}
	if c.GramineLibDir == "" {
		c.GramineLibDir = DefaultGramineLibDir
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.SignKey == nil {
		errs = append(errs, errors.New("no signing key; expected an RSA-3072 key with exponent 3"))
	}
	if c.Launcher == "" {
		errs = append(errs, errors.New("no launcher binary; expected the path of cloister-launch"))
	}
	if len(c.Protect) > 0 && len(c.FileKey) != protect.KeySize {
		errs = append(errs, fmt.Errorf("protected files need a %d-byte file key; found %d bytes", protect.KeySize, len(c.FileKey)))
	}
	for _, k := range []struct{ what, name string }{{"key name", c.KeyName}, {"volume key name", c.VolumeKeyName}} {
		if len(k.name) > 256 || strings.ContainsFunc(k.name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("%s %q: expected 1..256 printable bytes", k.what, k.name))
		}
	}
	if len(c.Protect) > 0 && len(c.EncryptedVolumes) > 0 && c.KeyName == c.VolumeKeyName {
		errs = append(errs, fmt.Errorf("key name and volume key name are both %q: expected two secrets, a user-defined protected-file key and a volume key the Coordinator generates", c.KeyName))
	}
	c.Exclude = mergeExcludes(c.Exclude)
	for _, l := range []struct {
		what  string
		paths []string
	}{{"encrypted volume", c.EncryptedVolumes}, {"writable path", c.Writable}, {"tmpfs directory", c.Tmpfs}} {
		if len(l.paths) > maxVolumes {
			errs = append(errs, fmt.Errorf("%d %ss; expected at most %d", len(l.paths), l.what, maxVolumes))
		}
		for _, v := range l.paths {
			if err := checkImagePath(v); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", l.what, v, err))
			} else if isReserved(v) {
				errs = append(errs, fmt.Errorf("%s %q: %s is reserved for the converter", l.what, v, reservedDir))
			}
		}
	}
	if !path.IsAbs(c.GramineLibDir) {
		errs = append(errs, fmt.Errorf("gramine library directory %q: expected an absolute path", c.GramineLibDir))
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	c.Limits = c.Limits.withDefaults()
	// The enclave manifest rules (patterns, sizes, env names) are checked
	// once more, all together, when the manifest is signed.
	probe := enclave.Manifest{Version: enclave.FormatVersion, Argv: []string{"/x"}, Exclude: c.Exclude,
		AllowEnv: c.AllowEnv, EnclaveSize: c.EnclaveSize, Threads: c.Threads, Coordinator: c.Coordinator, Files: []enclave.File{}}
	if err := probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// mergeExcludes returns DefaultExclude followed by the patterns of extra
// that it does not already hold.
func mergeExcludes(extra []string) []string {
	out := slices.Clone(DefaultExclude)
	for _, p := range extra {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// excluder returns the function that reports whether a path is excluded.
func excluder(patterns []string) func(string) bool {
	m := enclave.Manifest{Exclude: patterns}
	return m.Excluded
}
