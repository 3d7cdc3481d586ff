package controlplane

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// hostAppScript is a host program that knows nothing about Cloister: it copies the file the
// Coordinator delivered and a file of its own directory to $OUT.
const hostAppScript = `set -eu
{ cat "$FILES_DIR/greeting.txt"; echo; cat "$APP_DIR/conf.txt"; echo; echo "argv=$*"; } > "$OUT"
`

// enclaveSignOutput is the part of `cloister enclave sign --output json` the test reads.
type enclaveSignOutput struct {
	MREnclaveSimulation string   `json:"mrenclave_simulation"`
	Argv                []string `json:"argv"`
	Files               int      `json:"files"`
	Links               []struct {
		Path   string `json:"path"`
		Target string `json:"target"`
	} `json:"links"`
}

// TestEnclaveSignHostProgram signs an enclave manifest for a program on this host with
// `cloister enclave sign` (a directory of trusted files, reached through symbolic links, run
// by /bin/sh, itself a link on most systems), admits exactly the printed measurement in a
// deployment manifest, and runs the program with `cloister launch`: it starts with the file the
// Coordinator delivered. After a trusted file is changed the launcher refuses to start it.
func TestEnclaveSignHostProgram(t *testing.T) {
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	co := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)

	appDir, filesDir, out := e.Path("hostapp"), e.Path("delivered"), e.Path("out.txt")
	e2etest.WriteFile(t, filepath.Join(appDir, "app.sh"), []byte(hostAppScript), 0o755)
	e2etest.WriteFile(t, filepath.Join(appDir, "conf.txt"), []byte("conf from the host"), 0o644)
	if err := os.Symlink("app.sh", filepath.Join(appDir, "current")); err != nil {
		t.Fatal(err)
	}
	key, manifest := e.Path("signer.pem"), e.Path("hostapp.enclave.json")
	e.MustCLI(t, "image", "keygen", key)
	res := e.MustCLI(t, "enclave", "sign", "--sign-key", key, "--manifest", manifest, "--file", appDir,
		"--env", "FILES_DIR="+filesDir, "--env", "APP_DIR="+appDir, "--env", "OUT="+out, "--env", "PATH=/usr/bin:/bin",
		"--workdir", appDir, "--isvprodid", "9", "--output", "json",
		"--", "/bin/sh", filepath.Join(appDir, "current"), "from-enclave-manifest")
	var signed enclaveSignOutput
	if err := json.Unmarshal([]byte(res.Stdout), &signed); err != nil {
		t.Fatalf("enclave sign output: %v\n%s", err, res.Stdout)
	}
	// /bin/sh, app.sh, conf.txt and the link current; /bin/sh's target too when it is a link.
	if signed.Files < 4 || len(signed.MREnclaveSimulation) != 64 {
		t.Fatalf("enclave sign printed %+v; want at least 4 trusted files and a measurement", signed)
	}
	linked := map[string]string{}
	for _, l := range signed.Links {
		linked[l.Path] = l.Target
	}
	if got := linked[filepath.Join(appDir, "current")]; got != filepath.Join(appDir, "app.sh") {
		t.Errorf("links %v: want %s listed with its target app.sh", signed.Links, filepath.Join(appDir, "current"))
	}
	if fi, err := os.Lstat("/bin/sh"); err == nil && fi.Mode()&os.ModeSymlink != 0 && linked["/bin/sh"] == "" {
		t.Errorf("links %v: want /bin/sh, a symbolic link here, listed with its target", signed.Links)
	}

	deployment := map[string]any{
		"settings": map[string]any{"trust_domain": trustDomain},
		"packages": map[string]any{"host": map[string]any{"mrenclave": signed.MREnclaveSimulation}},
		"workloads": map[string]any{"hostapp": map[string]any{
			"package": "host",
			"files":   map[string]string{filepath.Join(filesDir, "greeting.txt"): "hello {{.Workload.Instance}}"},
		}},
	}
	e2etest.WriteJSON(t, e.Path("manifest.json"), deployment)
	e.MustCLI(t, "verify", "-c", co.Addrs.Client, "--simulation", p.Dir())
	e.MustCLI(t, "manifest", "set", e.Path("manifest.json"), "-c", co.Addrs.Client)

	launch := func(instance string) (int, string) {
		environ := append(e.BaseEnv(),
			"CLOISTER_COORDINATOR="+co.Addrs.Mesh,
			"CLOISTER_WORKLOAD=hostapp",
			"CLOISTER_INSTANCE="+instance,
			"CLOISTER_SIM_DIR="+p.Dir(),
			"CLOISTER_ENCLAVE_MANIFEST="+manifest,
			"CLOISTER_RETRY_TIMEOUT=5s",
		)
		proc := e.Start(t, "cloister launch hostapp/"+instance, environ, e.Bins.Cloister, "launch")
		return proc.Wait(t, e2etest.RunTimeout), proc.Output()
	}
	if code, log := launch("first"); code != 0 {
		t.Fatalf("cloister launch exited with %d, want 0:\n%s", code, log)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the host program did not run: %v", err)
	}
	want := "hello first\nconf from the host\nargv=from-enclave-manifest\n"
	if string(got) != want {
		t.Errorf("the host program wrote %q; want %q", got, want)
	}

	// A changed trusted file: the launcher refuses before it activates.
	os.Remove(out)
	e2etest.WriteFile(t, filepath.Join(appDir, "conf.txt"), []byte("conf changed on the host"), 0o644)
	code, log := launch("tampered")
	if code != 1 {
		t.Errorf("cloister launch with a changed trusted file exited with %d, want 1:\n%s", code, log)
	}
	for _, w := range []string{"refusing to start", filepath.Join(appDir, "conf.txt") + ": expected size 18", "not starting the application"} {
		if !strings.Contains(log, w) {
			t.Errorf("cloister launch output does not say %q:\n%s", w, log)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the host program ran although a trusted file changed")
	}
	if !slices.Contains(signed.Argv, "from-enclave-manifest") {
		t.Errorf("enclave sign printed argv %q; want the arguments given after --", signed.Argv)
	}
	co.Stop(t)
}
