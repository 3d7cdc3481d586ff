package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
)

// realTempDir is t.TempDir() without symbolic links in its path (macOS's /var is one), since
// the launcher refuses to write through any.
func realTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// assertNothingIn fails t if dir holds anything.
func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was written outside the target directory", filepath.Join(dir, e.Name()))
	}
}

// TestWriteFilesRefusesLinks is the regression test of finding 8: a symbolic link planted in the
// image on the path of a delivered file (webfiles → elsewhere) received key.pem. Each case plants
// links that point outside base (with absolute and relative targets, in a parent, as the last
// directory, as the file itself); writeFiles must refuse, name the link, write nothing where it
// points and replace none of the other delivered files.
func TestWriteFilesRefusesLinks(t *testing.T) {
	for _, tc := range []struct {
		name string
		// plant makes links below base pointing into outside and returns the path of key.pem and
		// the link the error must name.
		plant func(t *testing.T, base, outside string) (file, link string)
		why   string // follows the link's path in the error
	}{
		{"parent links to an absolute path", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv"))
			mustSymlink(t, outside, filepath.Join(base, "srv", "webfiles"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), filepath.Join(base, "srv", "webfiles")
		}, " is a symbolic link; refusing to write through it"},
		{"parent links to a relative path", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv"))
			rel, err := filepath.Rel(filepath.Join(base, "srv"), outside)
			if err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, rel, filepath.Join(base, "srv", "webfiles"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), filepath.Join(base, "srv", "webfiles")
		}, " is a symbolic link; refusing to write through it"},
		{"a higher directory links elsewhere; the rest would be created there", func(t *testing.T, base, outside string) (string, string) {
			mustSymlink(t, outside, filepath.Join(base, "srv"))
			return filepath.Join(base, "srv", "webfiles", "tls", "key.pem"), filepath.Join(base, "srv")
		}, " is a symbolic link; refusing to write through it"},
		{"the file is a link", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "webfiles"))
			mustSymlink(t, filepath.Join(outside, "key.pem"), filepath.Join(base, "srv", "webfiles", "key.pem"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), ""
		}, "found a symbolic link to %q (planted?); refusing to replace it"},
		{"the file is a link to a directory outside", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "webfiles"))
			mustSymlink(t, outside, filepath.Join(base, "srv", "webfiles", "key.pem"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), ""
		}, "found a symbolic link to %q (planted?); refusing to replace it"},
		{"the file is a directory", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "webfiles", "key.pem"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), ""
		}, "found a directory (planted?); refusing to replace it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, outside := realTempDir(t), realTempDir(t)
			file, link := tc.plant(t, base, outside)
			// Delivered with key.pem: a file before it and one after it in path order, in safe
			// directories, which must not be written either.
			before, after := filepath.Join(base, "a", "ca.pem"), filepath.Join(base, "z", "cert.pem")
			store := testStore(t)
			err := writeFiles(store, map[string][]byte{before: []byte("ca"), file: []byte("KEY"), after: []byte("cert")}, -1, -1)
			want := "delivered file " + file + ": " + link + tc.why
			if link == "" { // the file itself: it is not replaced
				target := filepath.Join(store.root.Name(), file)
				found := tc.why
				if strings.Contains(found, "%q") {
					found = fmt.Sprintf(found, must(os.Readlink(file)))
				}
				want = "delivered file " + file + ": expected nothing, a regular file or a symbolic link to " + target + "; " + found
			}
			if err == nil || err.Error() != want {
				t.Errorf("writeFiles = %v\nwant %s", err, want)
			}
			assertNothingIn(t, outside)
			assertNoFiles(t, store.root.Name())
			for _, p := range []string{before, after} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written although the launch was refused", p)
				}
			}
			if entries, _ := os.ReadDir(filepath.Dir(before)); len(entries) != 0 {
				t.Errorf("%s holds %d entries; want no temporary file left", filepath.Dir(before), len(entries))
			}
		})
	}
}

// testStore opens a delivered files' directory of its own in /dev/shm for a test.
func testStore(t *testing.T) *deliveredStore {
	t.Helper()
	dir := testShmDir(t)
	s, err := openDelivered(filepath.Join(dir, "delivered"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// testShmDir is a temporary directory on /dev/shm, a tmpfs.
func testShmDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "cloister-launcher-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := checkMemoryBacked(must(os.OpenRoot(dir))); err != nil {
		t.Skipf("/dev/shm: %v", err)
	}
	return dir
}

// diskTempDir is realTempDir, skipping the test where it is memory-backed.
func diskTempDir(t *testing.T) string {
	t.Helper()
	d := realTempDir(t)
	if checkMemoryBacked(must(os.OpenRoot(d))) == nil {
		t.Skip("the temporary directory is a tmpfs here")
	}
	return d
}

// assertNoFiles fails t if anything but directories is below dir.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("%s was left behind", p)
		}
		return nil
	})
}

// wantFile checks that p reads as want with mode 0600 and owner uid:gid.
func wantFile(t *testing.T, p string, want []byte, uid, gid int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != string(want) {
		t.Errorf("%s = %q, %v; want %q", p, b, err, want)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o600 || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v %d:%d; want -rw------- %d:%d", p, fi.Mode(), st.Uid, st.Gid, uid, gid)
	}
}

// TestWriteFilesNested: delivered files on disk, in nested directories that exist or not, are
// written only to memory-backed storage, each path a link to its copy there (0600, the
// application's owner); a regular file there is replaced; a renewal rewrites the copies and
// keeps the links; no temporary file is left.
func TestWriteFilesNested(t *testing.T) {
	base := diskTempDir(t)
	store := testStore(t)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 1234, 5678
	}
	mustMkdir(t, filepath.Join(base, "etc"))
	if err := os.WriteFile(filepath.Join(base, "etc", "app.conf"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		filepath.Join(base, "empty.txt"):                   {},
		filepath.Join(base, "etc", "app.conf"):             []byte("new"),
		filepath.Join(base, "etc", "tls", "key.pem"):       []byte("KEY"),
		filepath.Join(base, "etc", "tls", "cert.pem"):      []byte("CERT"),
		filepath.Join(base, "run", "a", "b", "c", "token"): []byte("TOKEN"),
	}
	for round := range 2 {
		if err := writeFiles(store, files, uid, gid); err != nil {
			t.Fatal(err)
		}
		for p, want := range files {
			wantFile(t, p, want, uid, gid)
			copy := filepath.Join(store.root.Name(), p)
			if got, err := os.Readlink(p); err != nil || got != copy {
				t.Errorf("round %d: %s links to %q (%v); want a link to %s", round, p, got, err, copy)
			}
			wantFile(t, copy, want, uid, gid)
			files[p] = append(want, "renewed"...)
		}
	}
	for _, d := range []string{".", "etc", "etc/tls", "run/a/b/c"} {
		for _, e := range must(os.ReadDir(filepath.Join(base, d))) {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Errorf("%s/%s: a temporary file was left", d, e.Name())
			}
		}
	}
	for p, want := range map[string]string{
		"/cloister/enclave.json": "delivered file /cloister/enclave.json: /cloister is reserved for the launcher and the enclave manifest",
		"relative/file":          `delivered file path "relative/file": expected an absolute clean path`,
		"/etc/../etc/passwd":     `delivered file path "/etc/../etc/passwd": expected an absolute clean path`,
		"/etc/":                  `delivered file path "/etc/": expected an absolute clean path`,
		"/":                      `delivered file path "/": expected an absolute clean path`,
		"/a\x00b":                `delivered file path "/a\x00b": expected an absolute clean path`,
	} {
		if err := writeFiles(store, map[string][]byte{p: nil}, -1, -1); err == nil || err.Error() != want {
			t.Errorf("writeFiles(%s) = %v; want %s", p, err, want)
		}
	}
}

// A delivered file whose directory is a tmpfs is written there, as a regular file, and nothing
// goes to the delivered files' directory.
func TestWriteFilesOnTmpfs(t *testing.T) {
	dir := testShmDir(t)
	store := testStore(t)
	p := filepath.Join(dir, "tls", "key.pem")
	if err := writeFiles(store, map[string][]byte{p: []byte("KEY")}, -1, -1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s: %v, %v; want a regular file", p, fi, err)
	}
	wantFile(t, p, []byte("KEY"), os.Getuid(), os.Getgid())
	assertNoFiles(t, store.root.Name())
}

// openDelivered empties what an earlier start left, unless another launcher holds the directory.
func TestOpenDeliveredClears(t *testing.T) {
	dir := filepath.Join(testShmDir(t), "delivered")
	log := slog.New(slog.DiscardHandler)
	first, err := openDelivered(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	base := diskTempDir(t)
	p := filepath.Join(base, "key.pem")
	if err := writeFiles(first, map[string][]byte{p: []byte("KEY")}, -1, -1); err != nil {
		t.Fatal(err)
	}
	// A second launcher while the first lives: the first one's file stays.
	second, err := openDelivered(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	second.close()
	wantFile(t, p, []byte("KEY"), os.Getuid(), os.Getgid())
	// The next start, once the first launcher is gone: emptied; the link left in the image
	// dangles until the file is delivered again.
	first.close()
	third, err := openDelivered(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer third.close()
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s after a restart = %v; want the earlier start's copy gone", p, err)
	}
	if err := writeFiles(third, map[string][]byte{p: []byte("KEY2")}, -1, -1); err != nil {
		t.Fatalf("writeFiles over the link of an earlier start: %v", err)
	}
	wantFile(t, p, []byte("KEY2"), os.Getuid(), os.Getgid())

	if _, err := openDelivered(realTempDir(t), log); err == nil || !strings.Contains(err.Error(), "is not memory-backed") {
		t.Errorf("openDelivered on disk = %v; want a refusal saying it is not memory-backed", err)
	}
}

// A delivered file whose link cannot be made on a read-only file system fails with the fix.
func TestWriteFilesReadOnly(t *testing.T) {
	requireRoot(t)
	base := diskTempDir(t)
	ro := filepath.Join(base, "ro")
	mustMkdir(t, ro)
	if err := syscall.Mount(ro, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	defer syscall.Unmount(ro, syscall.MNT_DETACH)
	if err := syscall.Mount(ro, ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("read-only remount: %v", err)
	}
	store := testStore(t)
	for _, p := range []string{filepath.Join(ro, "key.pem"), filepath.Join(ro, "etc", "key.pem")} {
		dir := filepath.Dir(p)
		err := writeFiles(store, map[string][]byte{p: []byte("KEY")}, -1, -1)
		want := fmt.Sprintf("delivered file %s: the file system at %s is read-only (", p, dir)
		fix := fmt.Sprintf("mount a tmpfs at %s (podman run --tmpfs %s; Kubernetes: an emptyDir with medium Memory) or deliver the file below /dev/shm", dir, dir)
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), fix) {
			t.Errorf("writeFiles(%s) = %v\nwant %s…%s", p, err, want, fix)
		}
		assertNoFiles(t, store.root.Name())
	}
}

// TestPrepareRefusesPlantedLink replays finding 8 end to end: the image has a link where the
// deployment manifest delivers the workload's key; the launch must fail before the application
// starts, naming the link, with nothing written where it points.
func TestPrepareRefusesPlantedLink(t *testing.T) {
	tc := startTestCoordinator(t)
	dir, elsewhere := realTempDir(t), realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	srv := filepath.Join(dir, "srv")
	mustMkdir(t, srv)
	mustSymlink(t, elsewhere, filepath.Join(srv, "webfiles"))
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{"package": "p", "files": map[string]string{
			srv + "/webfiles/key.pem":  "{{.Workload.Key}}",
			srv + "/webfiles/cert.pem": "{{.Workload.Cert}}",
		}}},
	})
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(), EnclaveManifest: path}
	_, err := Prepare(t.Context(), cfg)
	// Found before activation, for both files.
	want := "checked before activation (none was spent): delivered file " + srv + "/webfiles/cert.pem: " + srv + "/webfiles is a symbolic link; refusing to write through it\n" +
		"delivered file " + srv + "/webfiles/key.pem: " + srv + "/webfiles is a symbolic link; refusing to write through it"
	if err == nil || err.Error() != want {
		t.Errorf("Prepare = %v\nwant %s", err, want)
	}
	if n := tc.c.ActivationCounts()["app"]; n != 0 {
		t.Errorf("the Coordinator counted %d activations; want the launch refused before it activated", n)
	}
	assertNothingIn(t, elsewhere)
}

// TestCheckDelivered: a delivered file may not replace what the next start verifies (a trusted
// file, a protected file's link or encrypted copy) nor land among the decrypted plaintext; an
// excluded or unmeasured path may be delivered.
func TestCheckDelivered(t *testing.T) {
	m := &enclave.Manifest{
		Files:          []enclave.File{{Path: "/etc/nginx/nginx.conf"}},
		ProtectedFiles: []enclave.ProtectedFile{{Path: "/srv/www/index.html"}},
		EncryptedDir:   enclave.EncryptedDirDefault, PlaintextDir: enclave.ProtectedDir,
		Exclude: []string{"/etc/hosts"},
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/run/tls/key.pem", ""},
		{"/etc/hosts", ""},
		{"/etc/nginx/nginx.conf", "found a trusted file of the enclave manifest; replacing it would make every restart fail its check"},
		{"/srv/www/index.html", "found a protected file"},
		{"/cloister/protected/srv/www/index.html", "found a protected file"},
		{enclave.ProtectedDir + "/srv/www/other", "where the launcher decrypts protected files"},
	} {
		err := checkDelivered(m, map[string][]byte{tc.path: []byte("x")})
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkDelivered(%s) = %v; want %q", tc.path, err, tc.want)
		}
	}
}

// TestPrepareRefusesUnmeasuredProgram: a bare argv[0] found through a PATH directory the enclave
// manifest does not measure (a host-planted program ahead of the measured /bin/sh) is refused.
func TestPrepareRefusesUnmeasuredProgram(t *testing.T) {
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	planted := filepath.Join(dir, "planted")
	mustMkdir(t, planted)
	if err := os.WriteFile(filepath.Join(planted, "sh"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path, _ := writeApp(t, dir, func(m *enclave.Manifest) {
		m.Argv = []string{"sh", "-c", "true"}
		m.Env["PATH"] = planted + ":/usr/bin:/bin"
	})
	tc.setManifest(t, map[string]any{
		"packages":  map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{"package": "p"}},
	})
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir(), EnclaveManifest: path}
	_, err := Prepare(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "program "+filepath.Join(planted, "sh")+" is not a trusted file of the enclave manifest") {
		t.Errorf("Prepare = %v; want the planted program refused", err)
	}
}
