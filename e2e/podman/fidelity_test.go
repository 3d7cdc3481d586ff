package podman

import (
	"archive/tar"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// fidelityTools are the host's Debian programs the fidelity image runs.
var fidelityTools = []string{"/bin/dash", "/usr/bin/cat", "/usr/bin/setpriv", "/usr/bin/stat", "/usr/bin/sleep", "/usr/bin/tr"}

// fidelityScript runs as root in the container: it reads the protected tree as root, as
// www-data (33) and as another user (1000), prints what it found between RUN-START and RUN-END,
// and stays up.
const fidelityScript = `#!/bin/sh
as() { u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
try() { if "$@" >/dev/null 2>&1; then echo read; else echo denied; fi; }
echo RUN-START
echo "root index: $(cat /srv/www/index.html)"
echo "root private: $(cat /srv/www/private.key)"
echo "www-data index: $(as 33 cat /srv/www/index.html)"
echo "www-data through link: $(as 33 cat /srv/www/current)"
echo "www-data site.conf: $(as 33 cat /srv/www/conf/site.conf)"
echo "www-data private: $(try as 33 cat /srv/www/private.key)"
echo "other index: $(try as 1000 cat /srv/www/index.html)"
echo "files: $(stat -L -c '%n %a %u:%g' /srv/www/index.html /srv/www/conf/site.conf /srv/www/private.key | tr '\n' ';')"
echo "memory dirs: $(stat -c '%n %a %u:%g' /dev/shm/cloister-protected/srv/www /dev/shm/cloister-protected/srv/www/conf | tr '\n' ';')"
echo "file system: $(stat -f -L -c %T /srv/www/index.html)"
echo "empty dir: $(stat -c '%a %u:%g' /srv/www/empty)"
echo RUN-END
exec sleep 3600
`

// fidelityWant are the lines every start of the fidelity image prints.
var fidelityWant = []string{
	"root index: <h1>index FIDELITY</h1>",
	"root private: private FIDELITY",
	"www-data index: <h1>index FIDELITY</h1>",
	"www-data through link: <h1>index FIDELITY</h1>",
	"www-data site.conf: site FIDELITY",
	"www-data private: denied",
	"other index: denied",
	"files: /srv/www/index.html 644 0:0;/srv/www/conf/site.conf 640 0:33;/srv/www/private.key 600 0:0;",
	"memory dirs: /dev/shm/cloister-protected/srv/www 750 0:33;/dev/shm/cloister-protected/srv/www/conf 2750 0:33;",
	"file system: tmpfs",
	"empty dir: 700 33:33",
}

// fidelityImage builds the test image: the host's dash, cat, setpriv, stat, sleep and tr with
// their libraries, a check script, and the web tree /srv/www with the modes and owners of a
// multi-user server: a 0750 root:www-data root, a 0644 page, a 0640 root:www-data configuration
// in a setgid subdirectory, a 0600 root key, an empty directory and a symbolic link.
func fidelityImage(t *testing.T, dir string) string {
	base := baseLayer(t, dir)
	app := newLayer(t, dir)
	for _, tool := range fidelityTools {
		app.hostFile("/usr/bin/"+filepath.Base(tool), tool)
	}
	app.symlink("/usr/bin/sh", "dash")
	app.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nother:x:1000:1000::/:/usr/sbin/nologin\n"), 0o644)
	app.file("/etc/group", []byte("root:x:0:\nwww-data:x:33:\nother:x:1000:\n"), 0o644)
	app.file("/usr/local/bin/check", []byte(fidelityScript), 0o755)
	entry := func(h tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag == tar.TypeDir {
			app.dirs[strings.TrimSuffix(h.Name, "/")] = true
		}
		app.header(&h)
		if _, err := app.tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	entry(tar.Header{Typeflag: tar.TypeDir, Name: "/srv/www/", Mode: 0o750, Gid: 33}, "")
	entry(tar.Header{Typeflag: tar.TypeReg, Name: "/srv/www/index.html", Mode: 0o644}, "<h1>index FIDELITY</h1>")
	entry(tar.Header{Typeflag: tar.TypeReg, Name: "/srv/www/private.key", Mode: 0o600}, "private FIDELITY")
	entry(tar.Header{Typeflag: tar.TypeDir, Name: "/srv/www/conf/", Mode: 0o2750, Gid: 33}, "")
	entry(tar.Header{Typeflag: tar.TypeReg, Name: "/srv/www/conf/site.conf", Mode: 0o640, Gid: 33}, "site FIDELITY")
	entry(tar.Header{Typeflag: tar.TypeDir, Name: "/srv/www/empty/", Mode: 0o700, Uid: 33, Gid: 33}, "")
	app.symlink("/srv/www/current", "index.html")
	return writeImage(t, filepath.Join(dir, "in"), "fidelity", imageConfig{
		entrypoint: []string{"/usr/local/bin/check"}, env: []string{"PATH=/usr/bin:/bin"},
	}, base, libsLayer(t, dir, fidelityTools...), app.done())
}

// TestProtectedFidelityAndRestarts converts an image whose protected tree is read by root and
// by a non-root user, runs it, and restarts it three times with podman restart. Every start
// reads the same plaintext with the original modes and owners (a 0640 root:www-data file
// readable by group 33, a 0600 root file refused to 33, a 0750 directory refused to others),
// from memory, and is a new activation in the Coordinator's counts.
func TestProtectedFidelityAndRestarts(t *testing.T) {
	tools := []e2etest.Prereq{e2etest.Program("ldd", "apt-get install libc-bin")}
	for _, tool := range fidelityTools {
		tools = append(tools, e2etest.File(tool, "apt-get install coreutils util-linux dash"))
	}
	eng := newEngine(t, tools...)
	env := e2etest.New(t)
	dir := t.TempDir()
	coord := startCoordinator(t, env)

	signKey, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "files.key")
	mrsigner := keygen(t, signKey)
	ref := "localhost/cloister-e2e/fidelity:" + eng.run
	archive := filepath.Join(dir, "fidelity.tar")
	conv := convert(t, fidelityImage(t, dir), "docker-archive:"+archive+":"+ref, "--sign-key", signKey, "--isvprodid", "5",
		"--protect", "/srv/www", "--key-name", "web_files_key", "--key-file", keyFile)
	if len(conv.ProtectedFiles) != 3 {
		t.Fatalf("protected %d files; want index.html, private.key and conf/site.conf", len(conv.ProtectedFiles))
	}
	if found := scanBlobs(t, archive, map[string][]byte{"page": []byte("<h1>index FIDELITY</h1>"), "key": []byte("private FIDELITY")}); len(found) > 0 {
		t.Fatalf("protected plaintext in the converted image: %v", found)
	}
	eng.load(archive, ref)

	operator := env.NewUser(t, "operator")
	m, err := json.Marshal(map[string]any{
		"packages":  map[string]any{"web": map[string]any{"mrsigner": hex.EncodeToString(mrsigner[:]), "isvprodid": 5, "min_isvsvn": 1}},
		"workloads": map[string]any{"fidelity": map[string]any{"package": "web", "file_keys": []string{"web_files_key"}}},
		"secrets":   map[string]any{"web_files_key": map[string]any{"type": "user-defined"}},
		"users":     map[string]any{"operator": map[string]any{"certificate": operator.CertPEM, "roles": []string{"keys"}}},
		"roles":     map[string]any{"keys": map[string]any{"resource": "secrets", "names": []string{"web_files_key"}, "actions": []string{"write"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(coord.Addrs.Client, coord.root).SetManifest(t.Context(), m); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	op := client.New(coord.Addrs.Client, coord.root, client.WithCertificate(operator.TLS))
	if err := op.SetSecrets(t.Context(), map[string][]byte{"web_files_key": readFile(t, keyFile)}); err != nil {
		t.Fatalf("upload the file key: %v", err)
	}

	c := eng.start("fidelity", ref, coord.Platform.Dir(), map[string]string{
		"CLOISTER_COORDINATOR": coord.Addrs.Mesh, "CLOISTER_WORKLOAD": "fidelity", "CLOISTER_INSTANCE": "fidelity-" + eng.run,
		"CLOISTER_RETRY_TIMEOUT": "60s",
	})
	for start := 1; start <= 4; start++ {
		began := time.Now()
		if start > 1 {
			eng.must(time.Minute, "restart", "-t", "2", c.name)
		}
		var run string
		e2etest.WaitFor(t, 60*time.Second, fmt.Sprintf("start %d to finish its checks", start), func() (bool, string) {
			logs := c.logs()
			runs := strings.Split(logs, "RUN-START")
			run = runs[len(runs)-1]
			return len(runs) == start+1 && strings.Contains(run, "RUN-END"), tail(logs, 2000)
		})
		t.Logf("start %d: the checks ran %s after %s", start, time.Since(began).Round(time.Millisecond), map[bool]string{true: "podman restart", false: "podman run"}[start > 1])
		for _, want := range fidelityWant {
			if !strings.Contains(run, want+"\n") {
				t.Errorf("start %d: want the line %q; the run printed:\n%s", start, want, run)
			}
		}
		e2etest.WaitFor(t, 10*time.Second, fmt.Sprintf("activation %d in the Coordinator's counts", start), func() (bool, string) {
			st, err := client.New(coord.Addrs.Client, coord.root).Status(t.Context())
			if err != nil {
				return false, err.Error()
			}
			return st.Activations["fidelity"] == uint64(start), fmt.Sprintf("activations %v", st.Activations)
		})
	}
	if t.Failed() {
		return
	}
	// What a restart leaves behind is the container layer: it holds no protected plaintext.
	diff := eng.must(time.Minute, "diff", c.name)
	for _, line := range strings.Split(diff, "\n") {
		if strings.Contains(line, "/srv/www") {
			t.Errorf("the container layer changed the protected tree: %q\n%s", line, diff)
		}
	}
	coord.Stop(t)
}
