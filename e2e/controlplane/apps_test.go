package controlplane

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// appScript is the unmodified application of every test workload. It knows nothing about
// Cloister: it writes down the argv and environment it was started with (as the kernel has
// them), its working directory and a copy of every file it finds in $FILES_DIR, into
// $OUT_DIR/<instance>/, and marks the end with a "done" file.
const appScript = `set -eu
d="$OUT_DIR/${INSTANCE:-no-instance}"
mkdir -p "$d/seen"
cat /proc/$$/cmdline > "$d/cmdline"
cat /proc/$$/environ > "$d/environ"
pwd > "$d/cwd"
for f in "$FILES_DIR"/*; do
	if [ -f "$f" ]; then cat "$f" > "$d/seen/${f##*/}"; fi
done
echo done > "$d/done"
`

// Host environment of every launcher: what the enclave manifest's allow_env admits must reach
// the application, the rest must not.
var hostEnv = []string{
	"ALLOWED_VAR=from-host",
	"LC_E2E=from-host-lc",
	"FORBIDDEN_VAR=must-not-reach-the-app",
	"OVERRIDDEN=from-host",
}

// app is a confidential image in miniature: the script, its signed enclave manifest, the
// directory the Coordinator's files go to, and the directory the script reports into.
type app struct {
	name     string
	dir      string
	script   string
	filesDir string
	outDir   string
	manifest *enclave.Manifest
	signed   *enclave.Signed
	path     string // the signed enclave manifest
}

// newApp writes and signs an app. edit, if not nil, changes the enclave manifest before it is
// signed.
func (e *env) newApp(t *testing.T, name string, key *rsa.PrivateKey, edit func(*app, *enclave.Manifest)) *app {
	t.Helper()
	a := &app{name: name, dir: e.Path("apps", name)}
	a.script = filepath.Join(a.dir, "app.sh")
	a.filesDir = filepath.Join(a.dir, "files")
	a.outDir = filepath.Join(a.dir, "out")
	a.path = filepath.Join(a.dir, "enclave.json")
	e2etest.WriteFile(t, a.script, []byte(appScript), 0o755)
	m := &enclave.Manifest{
		Version:   enclave.FormatVersion,
		ISVProdID: 7,
		ISVSVN:    3,
		Argv:      []string{"/bin/sh", a.script, "from-enclave-manifest"},
		Env: map[string]string{
			"OUT_DIR":    a.outDir,
			"FILES_DIR":  a.filesDir,
			"PATH":       "/usr/bin:/bin",
			"FIXED_VAR":  "fixed",
			"OVERRIDDEN": "fixed",
		},
		AllowEnv:   []string{"ALLOWED_VAR", "LC_*"},
		WorkingDir: a.dir,
		Files:      []enclave.File{trustedFile(t, "/bin/sh"), trustedFile(t, a.script)},
	}
	if edit != nil {
		edit(a, m)
	}
	b, err := enclave.Sign(m, key)
	if err != nil {
		t.Fatalf("sign enclave manifest of %s: %v", name, err)
	}
	e2etest.WriteFile(t, a.path, b, 0o644)
	if a.signed, err = enclave.Parse(b); err != nil {
		t.Fatalf("parse the enclave manifest just signed: %v", err)
	}
	a.manifest = a.signed.Manifest
	return a
}

func trustedFile(t *testing.T, path string) enclave.File {
	t.Helper()
	b, err := os.ReadFile(path) // follows symbolic links, as the launcher's check does
	if err != nil {
		t.Fatal(err)
	}
	return enclave.File{Path: path, SHA256: sha256.Sum256(b), Size: int64(len(b))}
}

// mrenclave is the simulated MRENCLAVE of the app under the launcher binary bin.
func (a *app) mrenclave(t *testing.T, bin string) [32]byte {
	return enclave.SimMRENCLAVE(fileSHA256(t, bin), a.signed.Raw)
}

// launchOpts say how to launch an app.
type launchOpts struct {
	viaCLI   bool   // `cloister launch` instead of cloister-launch
	workload string // default: the app's name
	instance string
	mesh     string   // the Coordinator's workload API
	simDir   string   // the simulated platform the launcher quotes on
	retry    string   // CLOISTER_RETRY_TIMEOUT; default 5s
	env      []string // more host environment (NAME=value)
}

func (e *env) startLaunch(t *testing.T, a *app, o launchOpts) *e2etest.Proc {
	t.Helper()
	if o.workload == "" {
		o.workload = a.name
	}
	if o.retry == "" {
		o.retry = "5s"
	}
	environ := append(e.BaseEnv(), hostEnv...)
	environ = append(environ,
		"CLOISTER_COORDINATOR="+o.mesh,
		"CLOISTER_WORKLOAD="+o.workload,
		"CLOISTER_INSTANCE="+o.instance,
		"CLOISTER_SIM_DIR="+o.simDir,
		"CLOISTER_ENCLAVE_MANIFEST="+a.path,
		"CLOISTER_RETRY_TIMEOUT="+o.retry,
	)
	environ = append(environ, o.env...)
	if o.viaCLI {
		return e.Start(t, "cloister launch "+a.name+"/"+o.instance, environ, e.Bins.Cloister, "launch")
	}
	return e.Start(t, "cloister-launch "+a.name+"/"+o.instance, environ, e.Bins.Launcher)
}

// mustLaunch launches an app, requires that the application ran to its end, and returns what
// it saw.
func (e *env) mustLaunch(t *testing.T, a *app, o launchOpts) *seen {
	t.Helper()
	p := e.startLaunch(t, a, o)
	if code := p.Wait(t, e2etest.RunTimeout); code != 0 {
		t.Fatalf("%s exited with code %d, want 0 (the application ran):\n%s", p.Name, code, p.Output())
	}
	if !strings.Contains(p.Output(), "SIMULATION MODE") {
		t.Errorf("%s did not warn that it runs in simulation mode:\n%s", p.Name, p.Output())
	}
	return a.result(t, o.instance)
}

// launchFails launches an app, requires the launcher to refuse (exit code 1) with every
// substring of want in its output, and that the application never ran.
func (e *env) launchFails(t *testing.T, a *app, o launchOpts, want ...string) string {
	t.Helper()
	p := e.startLaunch(t, a, o)
	code := p.Wait(t, e2etest.RunTimeout)
	out := p.Output()
	if code != 1 {
		t.Errorf("%s exited with code %d, want 1 (refused)", p.Name, code)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output does not say %q:\n%s", p.Name, w, out)
		}
	}
	if !strings.Contains(out, "not starting the application") {
		t.Errorf("%s: output does not say that the application was not started:\n%s", p.Name, out)
	}
	if a.ran(o.instance) {
		t.Errorf("%s: the application ran although the launcher refused", p.Name)
	}
	return out
}

// seen is what the application reported.
type seen struct {
	argv  []string
	env   map[string]string
	cwd   string
	files map[string][]byte // by base name
}

// ran reports whether the application ran as instance (or without an instance ID).
func (a *app) ran(instance string) bool {
	for _, d := range []string{instance, "no-instance"} {
		if _, err := os.Stat(filepath.Join(a.outDir, d)); err == nil {
			return true
		}
	}
	return false
}

func (a *app) result(t *testing.T, instance string) *seen {
	t.Helper()
	d := filepath.Join(a.outDir, instance)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(d, name))
		if err != nil {
			t.Fatalf("%s/%s: the application did not report: %v", a.name, instance, err)
		}
		return b
	}
	read("done")
	s := &seen{env: map[string]string{}, files: map[string][]byte{}}
	s.argv = strings.Split(strings.TrimSuffix(string(read("cmdline")), "\x00"), "\x00")
	for _, kv := range bytes.Split(bytes.TrimSuffix(read("environ"), []byte{0}), []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		if _, dup := s.env[k]; dup {
			t.Errorf("%s/%s: environment variable %s given twice", a.name, instance, k)
		}
		s.env[k] = v
	}
	s.cwd = strings.TrimSpace(string(read("cwd")))
	entries, err := os.ReadDir(filepath.Join(d, "seen"))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		s.files[de.Name()] = read(filepath.Join("seen", de.Name()))
	}
	return s
}
