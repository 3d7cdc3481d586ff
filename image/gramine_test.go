package image

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/launcher"
)

// gramineDoc is the part of a Gramine manifest the tests read.
type gramineDoc struct {
	Libos struct {
		Entrypoint string
	}
	Loader struct {
		Entrypoint struct{ URI string }
		Argv       []string
		LogLevel   string `toml:"log_level"`
		Env        map[string]any
	}
	FS struct {
		Root   struct{ URI string }
		Mounts []map[string]string
	}
	SGX struct {
		Debug             bool
		EnclaveSize       string `toml:"enclave_size"`
		MaxThreads        int    `toml:"max_threads"`
		RemoteAttestation string `toml:"remote_attestation"`
		ISVProdID         int
		ISVSVN            int
		FileCheckPolicy   string                         `toml:"file_check_policy"`
		TrustedFiles      []struct{ URI, SHA256 string } `toml:"trusted_files"`
		AllowedFiles      []string                       `toml:"allowed_files"`
	}
}

// TestGramineManifest parses the Gramine manifest of a converted image as
// TOML and checks what real SGX hardware relies on.
func TestGramineManifest(t *testing.T) {
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "app"), file(`odd/"quoted"\ name`, "q"), file("odd/tab\tname", "t"), file("odd/ünï", "u"),
			file("etc/secret", "S"), dir("var/data/")})
	cfg := testConfig(t, "/etc/secret")
	cfg.AllowEnv = []string{"LANG", "LC_*", "MY-VAR"}
	cfg.EncryptedVolumes = []string{"/var/data"}
	res := convert(t, img, cfg)
	ls, _ := res.Image.Layers()
	files, _ := layerFiles(t, ls[len(ls)-1])
	raw := files["cloister/gramine.manifest"]
	var g gramineDoc
	md, err := toml.Decode(string(raw), &g)
	if err != nil {
		t.Fatalf("the Gramine manifest is not valid TOML: %v\n%s", err, raw)
	}
	for _, k := range md.Undecoded() {
		if !strings.HasPrefix(k.String(), "loader.env.") { // decoded as map[string]any
			t.Errorf("key the test does not know: %v", k)
		}
	}
	if g.Libos.Entrypoint != LauncherPath || !slices.Equal(g.Loader.Argv, []string{LauncherPath}) ||
		g.Loader.Entrypoint.URI != "file:"+DefaultGramineLibDir+"/libsysdb.so" || g.FS.Root.URI != "file:/" ||
		g.SGX.Debug || g.SGX.RemoteAttestation != "dcap" || g.SGX.EnclaveSize != "1G" || g.SGX.MaxThreads != 16 ||
		g.SGX.ISVProdID != 3 || g.SGX.ISVSVN != 2 || g.SGX.FileCheckPolicy != "strict" || g.Loader.LogLevel != "error" {
		t.Errorf("manifest settings: %+v", g)
	}
	for _, name := range []string{"CLOISTER_COORDINATOR", "CLOISTER_WORKLOAD", "CLOISTER_INSTANCE", "LANG", "MY-VAR"} {
		if v, ok := g.Loader.Env[name].(map[string]any); !ok || v["passthrough"] != true {
			t.Errorf("loader.env.%s = %v; want a passthrough", name, g.Loader.Env[name])
		}
	}
	if g.Loader.Env["CLOISTER_TEE"] != "gramine" || g.Loader.Env["CLOISTER_SIM_DIR"] != nil || g.Loader.Env["LC_*"] != nil {
		t.Errorf("loader.env = %v; want CLOISTER_TEE fixed to gramine, no CLOISTER_SIM_DIR, no pattern", g.Loader.Env)
	}
	wantMounts := []map[string]string{
		{"type": "tmpfs", "path": "/dev/shm/cloister-delivered"},
		{"type": "tmpfs", "path": "/dev/shm/cloister-protected"},
		{"type": "encrypted", "path": "/var/data", "uri": "file:/var/data", "key_name": DefaultVolumeKeyName},
	}
	if !slices.EqualFunc(g.FS.Mounts, wantMounts, func(a, b map[string]string) bool { return len(a) == len(b) && all(a, b) }) {
		t.Errorf("fs.mounts = %v; want %v", g.FS.Mounts, wantMounts)
	}
	m := signedManifest(t, res.Image).Manifest
	// The launcher, inside Gramine, trusts the signed enclave manifest's record of the
	// in-enclave tmpfs mounts: it must be exactly the Gramine manifest's.
	if tmpfs := gramineTmpfs(g); !slices.Equal(m.EnclaveTmpfs, tmpfs) {
		t.Errorf("enclave manifest enclave_tmpfs %q; the Gramine manifest mounts tmpfs at %q", m.EnclaveTmpfs, tmpfs)
	}
	trusted := map[string]string{}
	for _, f := range g.SGX.TrustedFiles {
		trusted[f.URI] = f.SHA256
	}
	for _, f := range m.Files {
		if trusted["file:"+f.Path] != f.SHA256.String() {
			t.Errorf("trusted file %q: sha256 %q; want %s", f.Path, trusted["file:"+f.Path], f.SHA256)
		}
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if trusted["file:"+LauncherPath] != sum(files["cloister/launch"]) || trusted["file:"+EnclaveManifestPath] != sum(files["cloister/enclave.json"]) {
		t.Error("the launcher and the enclave manifest are not trusted files with their digests")
	}
	if len(trusted) != len(m.Files)+2 || !slices.Equal(g.SGX.AllowedFiles, []string{"file:/cloister/protected/etc/secret"}) {
		t.Errorf("%d trusted files, allowed %v; want %d and the protected file", len(trusted), g.SGX.AllowedFiles, len(m.Files)+2)
	}
}

// gramineTmpfs returns the paths of g's in-enclave tmpfs mounts, in order.
func gramineTmpfs(g gramineDoc) []string {
	var paths []string
	for _, mnt := range g.FS.Mounts {
		if mnt["type"] == "tmpfs" {
			paths = append(paths, mnt["path"])
		}
	}
	return paths
}

// Without protected files the delivered files' directory is still an in-enclave tmpfs, in the
// Gramine manifest and in the enclave manifest's record alike; the host's /dev/shm is never
// taken for memory-backed storage.
func TestGramineManifestDeliveredTmpfs(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app")})
	res := convert(t, img, testConfig(t))
	ls, _ := res.Image.Layers()
	files, _ := layerFiles(t, ls[len(ls)-1])
	var g gramineDoc
	if _, err := toml.Decode(string(files["cloister/gramine.manifest"]), &g); err != nil {
		t.Fatal(err)
	}
	want := []string{enclave.DeliveredDir}
	m := signedManifest(t, res.Image).Manifest
	if got := gramineTmpfs(g); !slices.Equal(got, want) || !slices.Equal(m.EnclaveTmpfs, want) {
		t.Errorf("tmpfs mounts %q, enclave_tmpfs %q; want %q in both", got, m.EnclaveTmpfs, want)
	}
	if len(g.FS.Mounts) != 1 {
		t.Errorf("fs.mounts = %v; want the one tmpfs", g.FS.Mounts)
	}
}

// --tmpfs adds an in-enclave tmpfs, where delivered files can go under Gramine, to both
// manifests; one that would hide a measured file is refused, naming it.
func TestGramineManifestExtraTmpfs(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), dir("etc/app/tls/")})
	cfg := testConfig(t)
	cfg.Tmpfs = []string{"/etc/app/tls"}
	res := convert(t, img, cfg)
	ls, _ := res.Image.Layers()
	files, _ := layerFiles(t, ls[len(ls)-1])
	var g gramineDoc
	if _, err := toml.Decode(string(files["cloister/gramine.manifest"]), &g); err != nil {
		t.Fatal(err)
	}
	want := []string{enclave.DeliveredDir, "/etc/app/tls"}
	m := signedManifest(t, res.Image).Manifest
	if got := gramineTmpfs(g); !slices.Equal(got, want) || !slices.Equal(m.EnclaveTmpfs, want) {
		t.Errorf("tmpfs mounts %q, enclave_tmpfs %q; want %q in both", got, m.EnclaveTmpfs, want)
	}

	cfg = testConfig(t)
	cfg.Tmpfs = []string{"/bin"}
	_, err := Convert(t.Context(), source(t, img), cfg)
	if err == nil || !strings.Contains(err.Error(), `files[0].path "/bin/app": inside in-enclave tmpfs "/bin", which hides it`) {
		t.Errorf("Convert --tmpfs /bin = %v; want a refusal naming /bin/app", err)
	}
	cfg = testConfig(t)
	cfg.Tmpfs = []string{"relative"}
	if _, err := Convert(t.Context(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), `tmpfs directory "relative"`) {
		t.Errorf("Convert --tmpfs relative = %v; want a refusal naming it", err)
	}
}

func all(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTOMLString round-trips hostile strings through the TOML writer.
func TestTOMLString(t *testing.T) {
	for _, s := range []string{"", `"`, `\`, "a\nb", "\x00\x01\x7f", "tab\there", "ünïcødé", `'"""'`, "\u2028"} {
		var v struct{ K string }
		if _, err := toml.Decode("K = "+tomlString(s), &v); err != nil || v.K != s {
			t.Errorf("tomlString(%q) = %s decodes to %q, %v", s, tomlString(s), v.K, err)
		}
	}
	for in, want := range map[string]string{"LANG": "LANG", "MY-VAR": "MY-VAR", "A.B": `"A.B"`, "": `""`} {
		if got := tomlKey(in); got != want {
			t.Errorf("tomlKey(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestLauncherContract keeps the launcher settings this package writes
// equal to what package launcher reads.
func TestLauncherContract(t *testing.T) {
	for got, want := range map[string]string{
		envCoordinator: launcher.EnvCoordinator, envWorkload: launcher.EnvWorkload, envInstance: launcher.EnvInstance,
		envTEE: launcher.EnvTEE, envEnclaveManifest: launcher.EnvEnclaveManifest, envRetryTimeout: launcher.EnvRetryTimeout,
		protectedDir: launcher.ProtectedDir, EnclaveManifestPath: launcher.DefaultEnclaveManifest, "gramine": launcher.TEEGramine,
	} {
		if got != want {
			t.Errorf("image uses %q where the launcher uses %q", got, want)
		}
	}
	if !strings.HasPrefix(LauncherPath, reservedDir+"/") {
		t.Errorf("LauncherPath %s is outside %s", LauncherPath, reservedDir)
	}
}
