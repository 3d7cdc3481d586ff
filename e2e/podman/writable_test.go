package podman

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// hardenedTools are the host's Debian programs the hardened image runs.
var hardenedTools = []string{"/bin/dash", "/usr/bin/cat", "/usr/bin/id", "/usr/bin/df", "/usr/bin/wc"}

// hardenedScript prints, between RUN-START and RUN-END, the process identity, a protected file,
// the size of a large protected file, the delivered files and /dev/shm's use, and exits 0.
const hardenedScript = `#!/bin/sh
echo RUN-START
echo "id: $(id)"
echo "home: $HOME"
echo "protected: $(cat /srv/app/secret.txt)"
echo "blob: $(wc -c < /srv/big/blob)"
echo "delivered: $(cat /etc/app/token)"
echo "shm: $(df -k /dev/shm | { read -r header; read -r fs size used rest; echo "$used of $size KiB"; })"
echo RUN-END
`

// blobSize is the size of the large protected file: more than podman's default /dev/shm (64m)
// holds.
const blobSize = 100 << 20

// hardenedImage builds an image whose user app (1000, also in the group staff) runs a script
// that reads a protected 0640 root:app file, a protected random file of blobSize bytes and a
// delivered file. It returns the image reference and the protected file's content.
func hardenedImage(t *testing.T, dir string) (ref, secret string) {
	t.Helper()
	base := baseLayer(t, dir)
	app := newLayer(t, dir)
	for _, tool := range hardenedTools {
		app.hostFile("/usr/bin/"+filepath.Base(tool), tool)
	}
	app.symlink("/usr/bin/sh", "dash")
	app.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv/app:/usr/sbin/nologin\n"), 0o644)
	app.file("/etc/group", []byte("root:x:0:\nstaff:x:50:app\napp:x:1000:\n"), 0o644)
	app.file("/usr/local/bin/run", []byte(hardenedScript), 0o755)
	app.dir("/etc/app", 0o755)
	app.ownedDir("/srv/app", 0o750, 1000, 1000)
	secret = "secret HARDENED-" + secretHex()
	app.ownedFile("/srv/app/secret.txt", []byte(secret), 0o640, 0, 1000)
	app.ownedDir("/srv/app/state", 0o750, 1000, 1000)
	app.ownedFile("/srv/app/state/counter", []byte("0\n"), 0o640, 1000, 1000)
	blob := make([]byte, blobSize)
	rand.Read(blob)
	app.file("/srv/big/blob", blob, 0o644)
	ref = writeImage(t, filepath.Join(dir, "in"), "hardened", imageConfig{
		entrypoint: []string{"/usr/local/bin/run"}, env: []string{"PATH=/usr/bin:/bin"}, user: "app", workdir: "/srv/app",
	}, base, libsLayer(t, dir, hardenedTools...), app.done())
	return ref, secret
}

// runOutcome is how a run of the hardened image ended.
type runOutcome struct {
	code      int
	logs      string
	activated uint64            // activations the run spent
	lines     map[string]string // what the script printed, by name; nil if it did not run to its end
}

// worked reports whether the script ran to its end and the container exited 0.
func (o runOutcome) worked() bool { return o.code == 0 && o.lines != nil }

// scriptLines returns the "name: value" lines logs holds between RUN-START and RUN-END, or nil.
func scriptLines(logs string) map[string]string {
	_, run, ok := strings.Cut(logs, "RUN-START\n")
	if !ok {
		return nil
	}
	if run, _, ok = strings.Cut(run, "RUN-END"); !ok {
		return nil
	}
	lines := map[string]string{}
	for l := range strings.Lines(run) {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok {
			lines[k] = v
		}
	}
	return lines
}

// runHardened runs ref with podman run args and the simulated platform simDir until it exits,
// scans its layer for the secrets (when the test runs as root, which can read it) and returns how
// it ended.
func runHardened(t *testing.T, eng *engine, coord *coordinator, simDir, name, ref string, secrets map[string][]byte, args ...string) runOutcome {
	t.Helper()
	before := activations(t, coord, "hardened")
	c := eng.runArgs(name, ref, append(launchArgs(simDir, coord, "hardened"), args...)...)
	o := runOutcome{code: c.wait(90 * time.Second), logs: c.logs()}
	o.activated = activations(t, coord, "hardened") - before
	o.lines = scriptLines(o.logs)
	if os.Geteuid() == 0 {
		upper, _ := c.paths()
		if found := scanBlobs(t, upper, secrets); len(found) > 0 {
			t.Errorf("%v: after the run, the container's layer holds %v", args, found)
		}
	}
	return o
}

// platformCopy copies the simulated platform dir to a new directory owned by uid:gid, for a
// container that runs as that user: the Coordinator's platform is root's, its keys 0600.
func platformCopy(t *testing.T, dir string, uid, gid int) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sim")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dst, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestHardenedRuns runs a converted image with a 100 MiB protected file, a delivered file and a
// non-root image user the ways a hardened deployment runs it. With podman's default 64 MiB
// /dev/shm the launcher refuses before it activates, naming the MiB needed and --shm-size. With
// enough memory, the application gets the user, the groups (the image's and the runtime's
// --group-add) and HOME the original image gets from runc, and reads both files. A non-root
// container (--user) and a read-only root file system (--read-only) either work or are refused
// before activation (the Coordinator's count does not move) with the requirement named. After each run, the delivered file is nowhere in the container's
// layer.
func TestHardenedRuns(t *testing.T) {
	tools := []e2etest.Prereq{e2etest.Program("ldd", "apt-get install libc-bin")}
	for _, tool := range hardenedTools {
		tools = append(tools, e2etest.File(tool, "apt-get install coreutils dash"))
	}
	eng := newEngine(t, tools...)
	env := e2etest.New(t)
	dir := t.TempDir()
	coord := startCoordinator(t, env)
	began := time.Now()
	src, secret := hardenedImage(t, dir)
	t.Logf("the image took %s to build", time.Since(began).Round(time.Millisecond))

	signKey, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "files.key")
	keygen(t, signKey)
	ref := "localhost/cloister-e2e/hardened:" + eng.run
	archive := filepath.Join(dir, "hardened.tar")
	args := []string{"--sign-key", signKey, "--isvprodid", "8",
		"--protect", "/srv/app/secret.txt", "--protect", "/srv/big/blob", "--key-name", "hardened_files_key", "--key-file", keyFile}
	// The app's state directory, owned by the image's user, holds a measured file: convert warns.
	began = time.Now()
	conv := convert(t, src, "docker-archive:"+filepath.Join(dir, "warned.tar")+":localhost/warned:1", args...)
	t.Logf("convert took %s", time.Since(began).Round(time.Millisecond))
	if !slices.ContainsFunc(conv.Warnings, func(w string) bool { return contains(w, "1 measured file under /srv/app (owned by app)", "--writable") }) {
		t.Errorf("convert warned %q; want a warning about the measured file under /srv/app, which app owns, naming --writable", conv.Warnings)
	}
	// Marked --writable, it is unmeasured and reported so.
	conv = convert(t, src, "docker-archive:"+archive+":"+ref, append(args, "--writable", "/srv/app/state")...)
	if len(conv.Unmeasured) != 1 || conv.Unmeasured[0] != (jsonoutput.Unmeasured{Path: "/srv/app/state", Reason: "--writable", Files: 1}) {
		t.Errorf("convert --writable /srv/app/state reported unmeasured %+v; want /srv/app/state, --writable, 1 file", conv.Unmeasured)
	}
	if slices.ContainsFunc(conv.Warnings, func(w string) bool { return strings.Contains(w, "under /srv/app") }) {
		t.Errorf("convert --writable /srv/app/state still warns about /srv/app: %q", conv.Warnings)
	}
	if !slices.ContainsFunc(conv.Warnings, func(w string) bool { return strings.Contains(w, "--shm-size=") }) {
		t.Errorf("convert warned %q; want a warning that the 100 MiB protected file needs more than podman's default /dev/shm, naming --shm-size", conv.Warnings)
	}
	t.Logf("convert's warnings: %q", conv.Warnings)
	t.Logf("memory-backed storage: the report says %d bytes (%.1f MiB) for the protected files' plaintext", conv.MemoryBytes, float64(conv.MemoryBytes)/(1<<20))
	if conv.MemoryBytes < blobSize {
		t.Errorf("convert reported memory_bytes %d; want at least the %d bytes of the protected files", conv.MemoryBytes, blobSize)
	}
	eng.load(archive, ref)
	original := loadOriginal(t, eng, src, dir, "hardened-original")

	token := "token HARDENED-DELIVERED-" + secretHex()
	doc := manifestFromEntry(t, conv, "hardened", func(w map[string]any) {
		w["files"] = map[string]string{"/etc/app/token": token}
	})
	setManifest(t, env, coord, doc, map[string][]byte{"hardened_files_key": readFile(t, keyFile)})
	secrets := map[string][]byte{"delivered token": []byte(token), "protected file": []byte(secret)}
	sim := coord.Platform.Dir()

	t.Run("TooLittleMemory", func(t *testing.T) {
		o := runHardened(t, eng, coord, sim, "shm-64m", ref, secrets, "--shm-size=64m")
		if o.code == 0 || o.activated != 0 || o.lines != nil {
			t.Fatalf("with --shm-size=64m: exit %d, %d activations; want a failure before activation\n%s", o.code, o.activated, o.logs)
		}
		if !contains(o.logs, "MiB", "--shm-size", "not starting the application") {
			t.Errorf("the failure does not name the MiB needed and --shm-size:\n%s", o.logs)
		}
		// One rule (enclave.ShmSizeMiB): the launcher suggests the size the converter printed.
		shm := regexp.MustCompile(`--shm-size=[0-9]+m`)
		converter := ""
		for _, w := range conv.Warnings {
			if m := shm.FindString(w); m != "" {
				converter = m
			}
		}
		if launcher := shm.FindString(lastLine(o.logs)); launcher == "" || launcher != converter {
			t.Errorf("the launcher suggests %q, the converter %q; want the same size", launcher, converter)
		}
		t.Logf("with --shm-size=64m the launcher refuses before activation: %s", lastLine(o.logs))
	})

	// The original image under runc: the identity the converted one must give the application,
	// as the image's user and as --user 1000:1000.
	want := map[bool]map[string]string{}
	for _, user := range []bool{false, true} {
		args := []string{"--group-add", "4242"}
		if user {
			args = []string{"--user", "1000:1000"}
		}
		c := eng.runArgs(fmt.Sprintf("hardened-original-%v", user), original, args...)
		c.wait(60 * time.Second)
		if want[user] = scriptLines(c.logs()); want[user] == nil {
			t.Fatalf("the original image did not run its script:\n%s", c.logs())
		}
		t.Logf("the original image with %v runs as %q with HOME %q", args, want[user]["id"], want[user]["home"])
	}

	simApp := platformCopy(t, sim, 1000, 1000)
	// Where the launcher cannot put a delivered file (a symbolic link into memory-backed storage
	// at a path of the root file system that is read-only, or not writable by a non-root user)
	// it finds out before it activates, from the delivered paths in the verified Coordinator's
	// manifest: those runs are refused with the path, the uid and the fix, and the Coordinator's
	// activation count for the workload does not move; a tmpfs at the delivered file's
	// directory (owned by the user, for --user) makes them work.
	cases := []struct {
		name   string
		sim    string
		args   []string
		worked bool   // whether the run works
		before bool   // if not, whether it fails before activation
		why    string // if not, what the failure says
	}{
		{"Default", sim, []string{"--group-add", "4242"}, true, false, ""},
		{"NonRootUser", simApp, []string{"--user", "1000:1000"}, false, true, "checked before activation (none was spent): delivered file /etc/app/token: the launcher must make a symbolic link at it to its copy in memory-backed storage (" +
			enclave.DeliveredDir + "/etc/app/token), and /etc/app is not writable by uid 1000 (the container runs as a non-root user): mount a tmpfs at /etc/app that uid 1000 can write (podman run --tmpfs /etc/app:U;"},
		{"NonRootUserTmpfs", simApp, []string{"--user", "1000:1000", "--tmpfs", "/etc/app:U"}, true, false, ""},
		{"ReadOnly", sim, []string{"--read-only", "--group-add", "4242"}, false, true, "checked before activation (none was spent): delivered file /etc/app/token: the launcher must make a symbolic link at it to its copy in memory-backed storage (" +
			enclave.DeliveredDir + "/etc/app/token), and /etc/app is on a read-only file system ("},
		{"ReadOnlyTmpfs", sim, []string{"--read-only", "--tmpfs", "/etc/app", "--group-add", "4242"}, true, false, ""},
		{"NonRootReadOnlyTmpfs", simApp, []string{"--read-only", "--tmpfs", "/etc/app:U", "--user", "1000:1000"}, true, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--shm-size=256m"}, tc.args...)
			o := runHardened(t, eng, coord, tc.sim, "hardened-"+strings.ToLower(tc.name), ref, secrets, args...)
			if !o.worked() {
				t.Logf("%v: exit %d after %d activations: %s", args, o.code, o.activated, lastLine(o.logs))
				if tc.worked || (o.activated == 0) != tc.before || !contains(o.logs, "not starting the application", tc.why) {
					t.Errorf("%v: want works %v, before activation %v, saying %q\n%s", args, tc.worked, tc.before, tc.why, o.logs)
				}
				if tc.before && !contains(o.logs, "--tmpfs /etc/app", "emptyDir with medium: Memory") {
					t.Errorf("%v: the refusal does not name the fixes (--tmpfs, an emptyDir with medium Memory):\n%s", args, o.logs)
				}
				return
			}
			t.Logf("%v: works: id %q, HOME %q, /dev/shm %s", args, o.lines["id"], o.lines["home"], o.lines["shm"])
			if !tc.worked {
				t.Errorf("%v: works; want a failure saying %q", args, tc.why)
			}
			for k, v := range map[string]string{"protected": secret, "blob": fmt.Sprint(blobSize), "delivered": token} {
				if o.lines[k] != v {
					t.Errorf("%v: %s: %q; want %q\n%s", args, k, o.lines[k], v, o.logs)
				}
			}
			want := want[slices.Contains(args, "--user")]
			for _, k := range []string{"id", "home"} {
				if o.lines[k] != want[k] {
					t.Errorf("%v: %s %q; want the original image's %q", args, k, o.lines[k], want[k])
				}
			}
		})
	}
	coord.Stop(t)
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
