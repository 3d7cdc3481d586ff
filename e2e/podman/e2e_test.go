package podman

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Host binaries the images are made of (Debian packages redis-server and python3.11).
const (
	redisBin  = "/usr/bin/redis-server"
	pythonBin = "/usr/bin/python3.11"
	pythonLib = "/usr/lib/python3.11"
)

// secretHex returns a random secret that cannot occur by chance.
func secretHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// world is everything the scenario steps share.
type world struct {
	dir       string
	e         *engine
	env       *e2etest.Env // the Coordinator's processes and users
	coord     *coordinator
	mrsigner  [32]byte
	signKey   string
	otherKey  string
	redis     *convertOutput
	python    *convertOutput
	refs      map[string]string // podman image references, by role
	archives  map[string]string // docker-archive files, by role
	secrets   map[string][]byte // protected plaintexts, and the protected module's value
	module    string            // the value the protected module holds
	redisPort int
	pyPort    int
	operator  tls.Certificate
}

// TestConfidentialContainers runs real applications from unmodified Debian
// binaries as confidential containers in podman: Redis with its password
// and TLS certificate from the Coordinator, a Python mTLS service whose data
// file and module are protected, and two images that must not start: one
// tampered with after conversion, one signed by a key the manifest does not
// admit. Every blob of every converted image is scanned for the protected
// plaintext.
func TestConfidentialContainers(t *testing.T) {
	eng := newEngine(t,
		e2etest.File(redisBin, "apt-get install redis-server"),
		e2etest.File(pythonBin, "apt-get install python3.11"),
		e2etest.File(pythonLib, "apt-get install python3.11"),
		e2etest.Program("ldd", "apt-get install libc-bin"))
	began := time.Now()
	w := &world{e: eng, env: e2etest.New(t), dir: t.TempDir(), refs: map[string]string{}, archives: map[string]string{}}
	if err := os.Chmod(w.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.coord = startCoordinator(t, w.env)
	steps := []struct {
		name string
		fn   func(*testing.T, *world)
	}{
		{"BuildAndConvertImages", buildAndConvert},
		{"NoPlaintextInAnyBlob", scanImages},
		{"LoadImages", loadImages},
		{"RedisStartsOnlyAfterActivation", runRedis},
		{"PythonServesProtectedFilesOverMTLS", runPython},
		{"TamperedImageIsRefused", runTampered},
		{"UnknownSignerGetsNothing", runWrongSigner},
	}
	for _, s := range steps {
		stepStart := time.Now()
		if !t.Run(s.name, func(t *testing.T) { s.fn(t, w) }) {
			t.Fatalf("step %s failed; stopping", s.name)
		}
		t.Logf("%s took %s", s.name, time.Since(stepStart).Round(time.Millisecond))
	}
	w.coord.Stop(t)
	t.Logf("the scenario took %s", time.Since(began).Round(time.Millisecond))
}

func buildAndConvert(t *testing.T, w *world) {
	in := filepath.Join(w.dir, "in")
	base := baseLayer(t, w.dir)
	// Redis: base, libraries, the server binary.
	redisApp := newLayer(t, w.dir)
	redisApp.hostFile("/usr/bin/redis-server", redisBin)
	redisApp.dir("/var/lib/redis", 0o755)
	redisSrc := writeImage(t, in, "redis", imageConfig{
		entrypoint: []string{"redis-server"}, cmd: []string{"/etc/redis/redis.conf"},
		env: []string{"PATH=/usr/bin:/bin"}, user: "redis", workdir: "/var/lib/redis",
	}, base, libsLayer(t, w.dir, redisBin), redisApp.done())

	// Python: base, libraries, the standard library, an older data file, the app.
	dynload, err := filepath.Glob(filepath.Join(pythonLib, "lib-dynload", "*.so"))
	if err != nil {
		t.Fatal(err)
	}
	stdlib := newLayer(t, w.dir)
	stdlib.hostFile("/usr/bin/python3.11", pythonBin)
	stdlib.hostTree("/usr/lib/python3.11", pythonLib, "config-3.11-x86_64-linux-gnu", "test", "idlelib", "tkinter", "turtledemo", "ensurepip")
	w.module = "secret module " + secretHex()
	w.secrets = map[string][]byte{
		"data.txt":     []byte("customer records " + secretHex() + "\n"),
		"secretmod.py": fmt.Appendf(nil, "SECRET = %q\n", w.module),
		"module value": []byte(w.module),
		"old data.txt": []byte("old customer records " + secretHex() + "\n"),
	}
	oldApp := newLayer(t, w.dir)
	oldApp.file("/srv/app/data.txt", w.secrets["old data.txt"], 0o644)
	oldApp.symlink("/app", "srv/app")
	appPy, err := os.ReadFile("testdata/pyapp/app.py")
	if err != nil {
		t.Fatal(err)
	}
	app := newLayer(t, w.dir)
	app.file("/srv/app/app.py", appPy, 0o644)
	app.file("/srv/app/secretmod.py", w.secrets["secretmod.py"], 0o644)
	app.ownedFile("/srv/app/data.txt", w.secrets["data.txt"], 0o640, 1000, 1000) // the app's own: protected files keep their owners
	pySrc := writeImage(t, in, "python", imageConfig{
		entrypoint: []string{"python3.11", "/srv/app/app.py"},
		env:        []string{"PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"},
		user:       "app", workdir: "/srv/app",
	}, base, libsLayer(t, w.dir, append([]string{pythonBin}, dynload...)...), stdlib.done(), oldApp.done(), app.done())

	// The scan must be able to fail: the input holds every plaintext.
	for name := range w.secrets {
		if !hasFinding(scanBlobs(t, in, w.secrets), name) {
			t.Fatalf("the scan does not find %s in the input image; it could not catch a leak", name)
		}
	}

	w.signKey, w.otherKey = filepath.Join(w.dir, "signer.pem"), filepath.Join(w.dir, "other.pem")
	w.mrsigner = keygen(t, w.signKey)
	keygen(t, w.otherKey)
	tag := func(role string) string { return "localhost/cloister-e2e/" + role + ":" + w.e.run }
	for _, role := range []string{"redis", "python", "redis-wrong-signer", "python-tampered"} {
		w.refs[role] = tag(role)
		w.archives[role] = filepath.Join(w.dir, role+".tar")
	}
	dst := func(role string) string { return "docker-archive:" + w.archives[role] + ":" + w.refs[role] }
	w.redis = convert(t, redisSrc, dst("redis"), "--sign-key", w.signKey, "--isvprodid", "1")
	w.python = convert(t, pySrc, dst("python"), "--sign-key", w.signKey, "--isvprodid", "2",
		"--protect", "/srv/app/secretmod.py", "--protect", "/app/data.txt",
		"--key-name", "pysvc_files_key", "--key-file", filepath.Join(w.dir, "pysvc.key"))
	convert(t, redisSrc, dst("redis-wrong-signer"), "--sign-key", w.otherKey, "--isvprodid", "1")

	if w.redis.MRSigner != hex.EncodeToString(w.mrsigner[:]) || w.python.ISVProdID != 2 {
		t.Fatalf("convert reported MRSIGNER %s, ISVPRODID %d; want %x, 2", w.redis.MRSigner, w.python.ISVProdID, w.mrsigner)
	}
	if got := len(w.python.ProtectedFiles); got != 2 || w.python.Layers.Rewritten != 2 {
		t.Fatalf("python: %d protected files, %d rewritten layers; want 2 and 2 (the old and the new data file)", got, w.python.Layers.Rewritten)
	}
	if w.python.ProtectedFiles[0].Path != "/srv/app/data.txt" {
		t.Fatalf("--protect /app/data.txt protected %s; want /srv/app/data.txt (through the /app symbolic link)", w.python.ProtectedFiles[0].Path)
	}

	// Tamper with the converted Python image: a new layer changes a trusted file.
	tampered := appendFile(t, w.archives["python"], w.refs["python"], "srv/app/app.py",
		"print('TAMPERED APP RAN', flush=True)\n")
	if err := tarball.WriteToFile(w.archives["python-tampered"], mustTag(t, w.refs["python-tampered"]), tampered); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := cloister(t, "image", "inspect", "--verify", "docker-archive:"+w.archives["python-tampered"])
	if err == nil || !contains(out+errOut, "does not match its enclave manifest", "/srv/app/app.py: expected") {
		t.Fatalf("inspect --verify of the tampered image: err %v; want a difference at /srv/app/app.py\n%s%s", err, out, errOut)
	}
}

// appendFile returns the image ref of the docker-archive file archive with one
// more layer on top that writes content to p.
func appendFile(t *testing.T, archive, ref, p, content string) v1.Image {
	t.Helper()
	tg := mustTag(t, ref)
	img, err := tarball.ImageFromPath(archive, &tg)
	if err != nil {
		t.Fatal(err)
	}
	b := newLayer(t, t.TempDir())
	b.file("/"+p, []byte(content), 0o644)
	img, err = mutate.AppendLayers(img, b.done())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	tg, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func hasFinding(fs []finding, secret string) bool {
	for _, f := range fs {
		if f.secret == secret {
			return true
		}
	}
	return false
}

func scanImages(t *testing.T, w *world) {
	for _, role := range []string{"redis", "python", "redis-wrong-signer", "python-tampered"} {
		if found := scanBlobs(t, w.archives[role], w.secrets); len(found) > 0 {
			t.Errorf("%s: protected plaintext found: %v", role, found)
		}
	}
}

func loadImages(t *testing.T, w *world) {
	for _, role := range []string{"redis", "python", "redis-wrong-signer", "python-tampered"} {
		w.e.load(w.archives[role], w.refs[role])
	}
}

// manifest is the deployment manifest of the scenario.
func (w *world) manifest(t *testing.T, opPEM string) []byte {
	pkg := func(prodID int) map[string]any {
		return map[string]any{"mrsigner": hex.EncodeToString(w.mrsigner[:]), "isvprodid": prodID, "min_isvsvn": 1}
	}
	redisConf := fmt.Sprintf(`port 0
bind 127.0.0.1
tls-port %d
tls-cert-file /etc/redis/tls/server.pem
tls-key-file /etc/redis/tls/server.key
tls-ca-cert-file /etc/redis/tls/ca.pem
tls-auth-clients no
requirepass {{.Secrets.redis_password.Hex}}
save ""
appendonly no
dir /tmp
`, w.redisPort)
	m := map[string]any{
		"packages": map[string]any{"redis": pkg(1), "pysvc": pkg(2), "testclient": pkg(99)},
		"workloads": map[string]any{
			"redis": map[string]any{"package": "redis", "tls": map[string]any{"dns": []string{"redis.e2e"}, "ip": []string{"127.0.0.1"}},
				"files": map[string]string{
					"/etc/redis/redis.conf":     redisConf,
					"/etc/redis/tls/server.pem": "{{.Workload.Chain}}",
					"/etc/redis/tls/server.key": "{{.Workload.Key}}",
					"/etc/redis/tls/ca.pem":     "{{.CA.Root}}",
				}},
			"pysvc": map[string]any{"package": "pysvc", "tls": map[string]any{"dns": []string{"pysvc.e2e"}},
				"env":       map[string]string{"PORT": strconv.Itoa(w.pyPort)},
				"file_keys": []string{"pysvc_files_key"},
				"files": map[string]string{
					"/srv/tls/cert.pem": "{{.Workload.Chain}}",
					"/srv/tls/key.pem":  "{{.Workload.Key}}",
					"/srv/tls/ca.pem":   "{{.CA.Root}}",
				}},
			"testclient": map[string]any{"package": "testclient", "tls": map[string]any{"dns": []string{"client.e2e"}}},
		},
		"secrets": map[string]any{
			"redis_password":  map[string]any{"type": "symmetric-key", "size": 256},
			"pysvc_files_key": map[string]any{"type": "user-defined"},
		},
		"users": map[string]any{"operator": map[string]any{"certificate": opPEM, "roles": []string{"file-keys", "redis-admin"}}},
		"roles": map[string]any{
			"file-keys":   map[string]any{"resource": "secrets", "names": []string{"pysvc_files_key"}, "actions": []string{"write"}},
			"redis-admin": map[string]any{"resource": "secrets", "names": []string{"redis_password"}, "actions": []string{"read"}},
		},
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// launchEnv is the environment of a confidential container.
func (w *world) launchEnv(workload string) map[string]string {
	return map[string]string{
		"CLOISTER_COORDINATOR":   w.coord.Addrs.Mesh,
		"CLOISTER_WORKLOAD":      workload,
		"CLOISTER_INSTANCE":      workload + "-" + w.e.run,
		"CLOISTER_RETRY_TIMEOUT": "90s",
	}
}
