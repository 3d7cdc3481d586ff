package image

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// Paths of the converter's files inside the image (defined in package
// enclave, which the launcher shares).
const (
	LauncherPath        = enclave.LauncherPath
	EnclaveManifestPath = enclave.ManifestPath
	GramineManifestPath = enclave.GramineManifestPath
)

// The launcher's settings, defined once in package enclave, which the
// launcher reads them from.
const (
	envCoordinator     = enclave.EnvCoordinator
	envWorkload        = enclave.EnvWorkload
	envInstance        = enclave.EnvInstance
	envTEE             = enclave.EnvTEE
	envEnclaveManifest = enclave.EnvEnclaveManifest
	envRetryTimeout    = enclave.EnvRetryTimeout
	envDNSNames        = enclave.EnvDNSNames
	// protectedDir is where the launcher keeps decrypted protected files.
	protectedDir = enclave.ProtectedDir
)

// launcherEnv lists the launcher settings Gramine passes from the host into
// the enclave. They choose where to connect and which workload to be, not
// whom to trust. CLOISTER_TEE is fixed to gramine, so the host cannot make
// the launcher fall back to a simulated platform. CLOISTER_DNS_NAMES only asks
// for names: the Coordinator issues those the deployment manifest allows.
var launcherEnv = []string{envCoordinator, envWorkload, envInstance, envRetryTimeout, envDNSNames}

// gramineInput is what the Gramine manifest is made of.
type gramineInput struct {
	m            *enclave.Manifest
	cfg          *Config
	launcherSum  enclave.Digest
	manifestSum  enclave.Digest // of /cloister/enclave.json
	manifestSize int64
}

// gramineManifest writes the Gramine manifest of a converted image: TOML
// that gramine-sgx-sign reads as is (no Jinja). The enclave starts the
// launcher with a fixed argv (loader.argv), so the host chooses no argument:
// the application's command comes from the signed enclave manifest or the
// Coordinator. The image's root is fs.root (Gramine refuses "/" in
// fs.mounts); the launcher's memory-backed directories are in-enclave tmpfs
// mounts (enclaveTmpfs). Every trusted file is listed with its SHA-256, the signed
// enclave manifest and the launcher included, so MRENCLAVE covers them;
// the encrypted protected files are allowed files, authenticated by the
// launcher with their key; each encrypted volume is an encrypted mount
// keyed by its volume key.
// It streams to out (one line per trusted file) and returns out's first
// write error.
func gramineManifest(out io.Writer, in *gramineInput) error {
	b := bufio.NewWriter(out)
	var err error
	w := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(b, format, args...)
		}
	}
	w("# Gramine manifest of a confidential image, written by `cloister image convert`.\n")
	w("# Sign it with the key that signed %s: gramine-sgx-sign --manifest %s --key KEY --output launch.manifest.sgx\n",
		EnclaveManifestPath, GramineManifestPath)
	w("# Requires Gramine 1.6 or later installed at %s.\n\n", in.cfg.GramineLibDir)
	w("libos.entrypoint = %s\n", tomlString(LauncherPath))
	w("loader.entrypoint.uri = %s\n", tomlString("file:"+path.Join(in.cfg.GramineLibDir, "libsysdb.so")))
	w("loader.log_level = \"error\"\n")
	w("loader.argv = [%s]\n\n", tomlString(LauncherPath))

	w("loader.env.%s = %s\n", tomlKey(envTEE), tomlString(enclave.TEEGramine))
	w("loader.env.%s = %s\n", tomlKey(envEnclaveManifest), tomlString(EnclaveManifestPath))
	env := slices.Clone(launcherEnv)
	for _, a := range in.m.AllowEnv {
		if strings.HasSuffix(a, "*") {
			w("# allow_env %s: Gramine passes only exact names; list them with --allow-env NAME\n", tomlString(a))
			continue
		}
		if !slices.Contains(env, a) && !strings.HasPrefix(a, enclave.EnvPrefix) {
			env = append(env, a)
		}
	}
	for _, name := range env {
		w("loader.env.%s = { passthrough = true }\n", tomlKey(name))
	}

	w("\nfs.root.uri = \"file:/\"\n")
	w("# In-enclave tmpfs (enclave_tmpfs in the signed enclave manifest): the launcher's delivered\n")
	w("# files and protected plaintext live in enclave memory, never on the host.\n")
	w("fs.mounts = [\n")
	for _, t := range in.m.EnclaveTmpfs {
		w("  { type = \"tmpfs\", path = %s },\n", tomlString(t))
	}
	for _, v := range in.m.Volumes {
		w("  { type = \"encrypted\", path = %s, uri = %s, key_name = %s },\n", tomlString(v.Path), tomlString("file:"+v.Path), tomlString(v.Key))
	}
	w("]\n\n")

	w("sgx.debug = false\n")
	w("sgx.enclave_size = %s\n", tomlString(in.m.EnclaveSize))
	w("sgx.max_threads = %d\n", in.m.Threads)
	w("sgx.remote_attestation = \"dcap\"\n")
	w("sgx.isvprodid = %d\n", in.m.ISVProdID)
	w("sgx.isvsvn = %d\n", in.m.ISVSVN)
	w("sgx.file_check_policy = \"strict\"\n\n")

	trusted := make([]enclave.File, 0, len(in.m.Files)+2)
	trusted = append(trusted, in.m.Files...)
	trusted = append(trusted,
		enclave.File{Path: LauncherPath, SHA256: in.launcherSum},
		enclave.File{Path: EnclaveManifestPath, SHA256: in.manifestSum, Size: in.manifestSize})
	slices.SortFunc(trusted, func(a, b enclave.File) int { return cmp.Compare(a.Path, b.Path) })
	w("sgx.trusted_files = [\n")
	for _, f := range trusted {
		w("  { uri = %s, sha256 = \"%s\" },\n", tomlString("file:"+f.Path), f.SHA256)
	}
	w("]\n")
	if len(in.m.ProtectedFiles) > 0 {
		w("\n# Encrypted by the converter; the launcher checks them with the key the Coordinator delivers.\n")
		w("sgx.allowed_files = [\n")
		for _, f := range in.m.ProtectedFiles {
			w("  %s,\n", tomlString("file:"+in.m.EncryptedPath(f.Path)))
		}
		w("]\n")
	}
	if err != nil {
		return err
	}
	return b.Flush()
}

// enclaveTmpfs returns the directories the Gramine manifest of m mounts as
// in-enclave tmpfs, recorded in the signed enclave manifest
// ([enclave.Manifest.EnclaveTmpfs]) so that the launcher, inside Gramine,
// knows them: the delivered files' directory, with protected files their
// plaintext directory, and the --tmpfs directories extra (clean absolute
// paths). Sorted and unique, as the format requires; the format's rules
// (no nesting, no measured file hidden) are checked when it is signed.
func enclaveTmpfs(m *enclave.Manifest, extra []string) []string {
	dirs := []string{enclave.DeliveredDir}
	if m.PlaintextDir != "" {
		dirs = append(dirs, m.PlaintextDir)
	}
	for _, d := range extra {
		dirs = append(dirs, path.Clean(d))
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlKey returns name as a TOML key: bare when it may be, quoted otherwise.
func tomlKey(name string) string {
	bare := name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	})
	if bare {
		return name
	}
	return tomlString(name)
}
