package launcher

import (
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
			return filepath.Join(base, "srv", "webfiles", "key.pem"), filepath.Join(base, "srv", "webfiles", "key.pem")
		}, " is a symbolic link; refusing to write through it"},
		{"the file is a link to a directory outside", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "webfiles"))
			mustSymlink(t, outside, filepath.Join(base, "srv", "webfiles", "key.pem"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), filepath.Join(base, "srv", "webfiles", "key.pem")
		}, " is a symbolic link; refusing to write through it"},
		{"the file is a directory", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "webfiles", "key.pem"))
			return filepath.Join(base, "srv", "webfiles", "key.pem"), filepath.Join(base, "srv", "webfiles", "key.pem")
		}, ": expected a regular file or nothing, found a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, outside := realTempDir(t), realTempDir(t)
			file, link := tc.plant(t, base, outside)
			// Delivered with key.pem: a file before it and one after it in path order, in safe
			// directories, which must not be written either.
			before, after := filepath.Join(base, "a", "ca.pem"), filepath.Join(base, "z", "cert.pem")
			err := writeFiles(map[string][]byte{before: []byte("ca"), file: []byte("KEY"), after: []byte("cert")}, -1, -1)
			want := "delivered file " + file + ": " + link + tc.why
			if err == nil || err.Error() != want {
				t.Errorf("writeFiles = %v\nwant %s", err, want)
			}
			assertNothingIn(t, outside)
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

// TestWriteFilesNested: normal delivered files, in nested directories that exist or not, get
// mode 0600 and the application's owner, replace what was there and leave no temporary file.
func TestWriteFilesNested(t *testing.T) {
	base := realTempDir(t)
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
	if err := writeFiles(files, uid, gid); err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != string(want) {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != 0o600 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: %v %d:%d; want -rw------- %d:%d", p, fi.Mode(), st.Uid, st.Gid, uid, gid)
		}
	}
	for _, d := range []string{"etc/tls", "run/a/b/c"} {
		if entries, _ := os.ReadDir(filepath.Join(base, d)); len(entries) > 2 {
			t.Errorf("%s holds %d entries; want no temporary file left", d, len(entries))
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
		if err := writeFiles(map[string][]byte{p: nil}, -1, -1); err == nil || err.Error() != want {
			t.Errorf("writeFiles(%s) = %v; want %s", p, err, want)
		}
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
	want := "delivered file " + srv + "/webfiles/cert.pem: " + srv + "/webfiles is a symbolic link; refusing to write through it"
	if err == nil || err.Error() != want {
		t.Errorf("Prepare = %v\nwant %s", err, want)
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
