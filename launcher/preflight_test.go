package launcher

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
)

// readOnlyDir bind-mounts a new directory of a disk temporary directory read-only over itself,
// as podman run --read-only leaves the root file system, and returns it.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	ro := filepath.Join(diskTempDir(t), "ro")
	mustMkdir(t, ro)
	if err := syscall.Mount(ro, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
	if err := syscall.Mount(ro, ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("read-only remount: %v", err)
	}
	return ro
}

// A delivered file the launcher could not link from a read-only file system is refused before
// activation: the Coordinator counts no activation, and the refusal names the path, the uid and
// the fix. With a tmpfs mounted where the file goes, the same launch works and the file is there.
func TestPreflightReadOnly(t *testing.T) {
	ro := readOnlyDir(t)
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	etc := filepath.Join(ro, "etc") // missing: the launcher would have to create it
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{"package": "p", "files": map[string]string{
			ro + "/key.pem": "{{.Workload.Key}}", etc + "/cert.pem": "{{.Workload.Cert}}",
		}}},
	})
	store := filepath.Join(testShmDir(t), "delivered")
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(),
		EnclaveManifest: path, deliveredDir: store, Log: slog.New(slog.DiscardHandler)}
	_, err := Prepare(t.Context(), cfg)
	for _, want := range []string{
		"checked before activation (none was spent): delivered file " + etc + "/cert.pem: the launcher must create " + etc +
			" and make a symbolic link at it to its copy in memory-backed storage (" + store + etc + "/cert.pem), and " + ro + " is on a read-only file system (",
		"delivered file " + ro + "/key.pem: the launcher must make a symbolic link at it to its copy in memory-backed storage (" + store + ro + "/key.pem), and " + ro + " is on a read-only file system (",
		": mount a tmpfs at " + ro + " (podman run --tmpfs " + ro + "; Kubernetes: an emptyDir with medium: Memory mounted at " + ro + ") or deliver the file below /dev/shm",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Prepare = %v\nwant it to say %s", err, want)
		}
	}
	if n := tc.c.ActivationCounts()["app"]; n != 0 {
		t.Errorf("the Coordinator counted %d activations; want none spent on a launch that cannot work", n)
	}

	// A tmpfs where the files go (as podman run --tmpfs): the launch works.
	if err := syscall.Mount("tmpfs", ro, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount a tmpfs: %v", err)
	}
	defer syscall.Unmount(ro, syscall.MNT_DETACH)
	if _, err := Prepare(t.Context(), cfg); err != nil {
		t.Fatalf("Prepare with a tmpfs at %s: %v", ro, err)
	}
	if fi, err := os.Lstat(etc + "/cert.pem"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s/cert.pem: %v, %v; want the file itself on the tmpfs", etc, fi, err)
	}
	if n := tc.c.ActivationCounts()["app"]; n != 1 {
		t.Errorf("the Coordinator counted %d activations, want 1", n)
	}
}

// The check reports every problem at once, each as the launch would meet it: a path reserved
// for the launcher, a trusted file, a planted link; an earlier start's own link needs no write.
func TestWriteCheck(t *testing.T) {
	store := testStore(t)
	dir := realTempDir(t)
	m := &enclave.Manifest{Files: []enclave.File{{Path: dir + "/trusted"}}}
	w := writeCheck{m: m, store: store, uid: os.Geteuid()}
	mustSymlink(t, filepath.Join(store.root.Name(), dir, "ok"), dir+"/ok")
	mustSymlink(t, "/elsewhere", dir+"/planted")
	err := w.check([]string{"/cloister/x", dir + "/trusted", dir + "/ok", dir + "/planted", dir + "/new/file"})
	for _, want := range []string{
		"delivered file /cloister/x: /cloister is reserved for the launcher",
		"delivered file " + dir + "/trusted: expected a path the image does not measure",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check = %v\nwant it to say %s", err, want)
		}
	}
	// The static refusals come first; without them, the planted link is found.
	err = w.check([]string{dir + "/ok", dir + "/planted", dir + "/new/file"})
	want := "delivered file " + dir + "/planted: expected nothing, a regular file or a symbolic link to " + filepath.Join(store.root.Name(), dir, "planted") + `; found a symbolic link to "/elsewhere" (planted?); refusing to replace it`
	if err == nil || err.Error() != want {
		t.Errorf("check = %v\nwant %s", err, want)
	}
	if err := w.check([]string{dir + "/ok", dir + "/new/file"}); err != nil {
		t.Errorf("check of writable places = %v", err)
	}
}

// A seeded encrypted volume the launcher would have to seed on a read-only file system, or
// create there, is refused before activation; one that holds data needs no write.
func TestWriteCheckVolumes(t *testing.T) {
	ro := readOnlyDir(t)
	store := testStore(t)
	m := &enclave.Manifest{Volumes: []enclave.Volume{{Path: ro + "/missing"}, {Path: ro, Seed: true}}}
	err := writeCheck{m: m, store: store, uid: os.Geteuid()}.check(nil)
	for _, want := range []string{
		"encrypted volume " + ro + "/missing: the launcher must create it, and " + ro + " is on a read-only file system (",
		"encrypted volume " + ro + ": the launcher must seed it from the image, and " + ro + " is on a read-only file system (",
		"mount a volume at " + ro + " (podman run -v NAME:" + ro + "; Kubernetes: a persistentVolumeClaim mounted there)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check = %v\nwant it to say %s", err, want)
		}
	}
}

// Which paths the deployment manifest delivers to a workload, read from the Coordinator's
// public manifest.
func TestDeliveredPaths(t *testing.T) {
	raw := []byte(`{"workloads": {"a": {"files": {"/etc/b": "x", "/etc/a": "{{.Workload.Key}}"}, "env": {"X": "1"}}, "b": {}}, "secrets": {}}`)
	for _, tc := range []struct {
		workload string
		want     []string
		found    bool
	}{{"a", []string{"/etc/a", "/etc/b"}, true}, {"b", nil, true}, {"c", nil, false}} {
		paths, found, err := deliveredPaths(raw, tc.workload)
		if err != nil || found != tc.found || !slices.Equal(paths, tc.want) {
			t.Errorf("deliveredPaths(%s) = %q, %v, %v; want %q, %v", tc.workload, paths, found, err, tc.want, tc.found)
		}
	}
	if _, _, err := deliveredPaths([]byte(`{"workloads": [`), "a"); err == nil {
		t.Error("deliveredPaths of broken JSON: no error")
	}
}

// FuzzDeliveredPaths reads arbitrary manifests: no panic, and the paths are sorted keys.
func FuzzDeliveredPaths(f *testing.F) {
	f.Add([]byte(`{"workloads": {"a": {"files": {"/etc/b": "x", "/etc/a": "y"}}}}`), "a")
	f.Add([]byte(`{"workloads": {"a": null}}`), "a")
	f.Add([]byte(`{"workloads": {"a": {"files": {"": 1}}}}`), "a")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, raw []byte, workload string) {
		paths, found, err := deliveredPaths(raw, workload)
		if err == nil && !found && len(paths) > 0 {
			t.Errorf("paths %q for a missing workload", paths)
		}
		if !slices.IsSorted(paths) {
			t.Errorf("paths %q not sorted", paths)
		}
	})
}

// Inside Gramine, memory-backed storage is what the signed enclave manifest records as
// in-enclave tmpfs, not what statfs says (Gramine's names no type): the delivered files'
// directory is accepted there even on disk, refused when the manifest records no mount (an
// image converted before they were recorded); protected files, whose links the host resolves,
// are refused; and a delivered file outside an in-enclave tmpfs is refused before activation.
func TestGramineMemory(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	delivered := filepath.Join(diskTempDir(t), "delivered")
	cfg := Config{deliveredDir: delivered}

	_, _, err := openMemory(cfg, &enclave.Manifest{}, true, log)
	want := "delivered files: " + delivered + " is not memory-backed storage of this enclave: the enclave manifest records no in-enclave tmpfs (the image was converted before they were recorded; convert it again)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("openMemory under Gramine, no enclave_tmpfs = %v\nwant %s…", err, want)
	}

	m := &enclave.Manifest{EnclaveTmpfs: []string{delivered}}
	store, plain, err := openMemory(cfg, m, true, log)
	if err != nil || plain != nil {
		t.Fatalf("openMemory under Gramine with %s recorded as in-enclave tmpfs = %v", delivered, err)
	}
	defer store.close()
	if err := checkMemoryBacked(store.root); err == nil {
		t.Fatal("the test directory is a tmpfs: it shows nothing")
	}
	other := realTempDir(t)
	w := writeCheck{m: m, store: store, uid: os.Geteuid(), gramine: true}
	err = w.check([]string{other + "/key.pem"})
	want = fmt.Sprintf("delivered file %s/key.pem: inside Gramine a delivered file must be in an in-enclave tmpfs, and %s is in none of the enclave manifest's (%s)", other, other, delivered)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("check under Gramine = %v\nwant %s…", err, want)
	}
	if err := writeFiles(store, map[string][]byte{other + "/key.pem": []byte("KEY")}, -1, -1); err == nil || !strings.Contains(err.Error(), "Gramine's host file system has no symbolic links") {
		t.Errorf("writeFiles under Gramine outside an in-enclave tmpfs = %v; want a refusal", err)
	}
	assertNothingIn(t, other)

	// With the directory recorded as in-enclave tmpfs (convert --tmpfs), the file goes there.
	m.EnclaveTmpfs = []string{delivered, other}
	if err := w.check([]string{other + "/tls/key.pem"}); err != nil {
		t.Errorf("check under Gramine inside an in-enclave tmpfs = %v", err)
	}
	if err := writeFiles(store, map[string][]byte{other + "/tls/key.pem": []byte("KEY")}, -1, -1); err != nil {
		t.Errorf("writeFiles under Gramine inside an in-enclave tmpfs = %v", err)
	}
	wantFile(t, other+"/tls/key.pem", []byte("KEY"), os.Getuid(), os.Getgid())

	pm := &enclave.Manifest{EnclaveTmpfs: []string{delivered}, PlaintextDir: enclave.ProtectedDir,
		ProtectedFiles: []enclave.ProtectedFile{{Path: "/etc/secret"}}}
	_, _, err = openMemory(cfg, pm, true, log)
	want = "protected files (1, /etc/secret first) do not work inside Gramine yet"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("openMemory under Gramine with protected files = %v\nwant %s…", err, want)
	}
}

// envWriteCheckChild makes TestWriteCheckNonRoot's child run the check (see there).
const envWriteCheckChild = "CLOISTER_TEST_WRITE_CHECK_DIR"

// A non-root launcher (podman run --user) is refused a delivered file in a root-owned directory,
// naming the uid and the fixes, and accepted where it may write: the check runs as a child
// process of uid 65534, since root may write anywhere.
func TestWriteCheckNonRoot(t *testing.T) {
	if dirs := os.Getenv(envWriteCheckChild); dirs != "" {
		dir, shm, _ := strings.Cut(dirs, ":")
		store, err := openDelivered(filepath.Join(shm, "delivered"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer store.close()
		w := writeCheck{m: &enclave.Manifest{}, store: store, uid: os.Geteuid()}
		fmt.Println("ROOT-OWNED:", w.check([]string{dir + "/etc/app/token"}))
		fmt.Println("OWN:", w.check([]string{dir + "/own/token", shm + "/token"}))
		return
	}
	requireRoot(t)
	if testing.Short() {
		t.Skip("starts a process")
	}
	const uid = 65534
	dir := realTempDir(t)
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		noErr(t, os.Chmod(d, 0o755))
	}
	mustMkdir(t, dir+"/etc/app")
	mustMkdir(t, dir+"/own")
	noErr(t, os.Chown(dir+"/own", uid, uid))
	shm := testShmDir(t)
	noErr(t, os.Chmod(shm, 0o755))
	noErr(t, os.Chown(shm, uid, uid))
	exe := filepath.Join(dir, "launcher.test")
	b, err := os.ReadFile(os.Args[0])
	noErr(t, err)
	noErr(t, os.WriteFile(exe, b, 0o755))
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestWriteCheckNonRoot$")
	cmd.Env = append(os.Environ(), envWriteCheckChild+"="+dir+":"+shm)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("the child as uid %d: %v\n%s", uid, err, out)
	}
	head := fmt.Sprintf("ROOT-OWNED: delivered file %s/etc/app/token: the launcher must make a symbolic link at it to its copy in memory-backed storage", dir)
	tail := fmt.Sprintf(", and %s/etc/app is not writable by uid %d (the container runs as a non-root user): mount a tmpfs at %s/etc/app that uid %d can write (podman run --tmpfs %s/etc/app:U;", dir, uid, dir, uid, dir)
	fix := "run the container as root (the launcher switches to the image's user itself: drop --user, or runAsUser: 0)"
	if !contains(string(out), head, tail, fix) {
		t.Errorf("the check as uid %d said:\n%s\nwant %s … %s … %s", uid, out, head, tail, fix)
	}
	if !strings.Contains(string(out), "OWN: <nil>") {
		t.Errorf("the check as uid %d of places it may write said:\n%s\nwant OWN: <nil>", uid, out)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
