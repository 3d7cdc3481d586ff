package podman

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ownedFile adds a regular file with an owner and group.
func (b *layerBuilder) ownedFile(p string, content []byte, mode int64, uid, gid int) {
	b.t.Helper()
	b.parents(p)
	b.header(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(content))})
	if _, err := b.tw.Write(content); err != nil {
		b.t.Fatal(err)
	}
}

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

// nginxBin is Debian's nginx (nginx-light or nginx).
const nginxBin = "/usr/sbin/nginx"

// nginxImage builds an image of Debian's unmodified nginx with its stock /etc/nginx (nginx.conf:
// user www-data, logs under /var/log/nginx, which link to /dev/stdout and /dev/stderr as in the
// Docker nginx image), minus the default site and dynamic modules, plus one TLS site on port
// whose certificate and key the Coordinator delivers to /run/tls, enabled through a relative
// symbolic link in sites-enabled. The web root holds a 0644 page, a 0640 root:www-data page and a
// 0600 root page.
func nginxImage(t *testing.T, dir string, port int) string {
	base := baseLayer(t, dir)
	app := newLayer(t, dir)
	app.hostFile("/usr/sbin/nginx", nginxBin)
	app.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"), 0o644)
	app.file("/etc/group", []byte("root:x:0:\nwww-data:x:33:\n"), 0o644)
	app.hostTree("/etc/nginx", "/etc/nginx", "sites-enabled", "modules-enabled")
	app.dir("/etc/nginx/modules-enabled", 0o755)
	app.file("/etc/nginx/sites-available/tls", fmt.Appendf(nil, `server {
	listen 127.0.0.1:%d ssl;
	server_name web.e2e;
	ssl_certificate /run/tls/chain.pem;
	ssl_certificate_key /run/tls/key.pem;
	root /srv/www;
	location / { try_files $uri $uri/ =404; }
}
`, port), 0o644)
	app.symlink("/etc/nginx/sites-enabled/tls", "../sites-available/tls")
	app.dir("/var/lib/nginx", 0o755)
	app.dir("/var/log/nginx", 0o755)
	app.symlink("/var/log/nginx/access.log", "/dev/stdout")
	app.symlink("/var/log/nginx/error.log", "/dev/stderr")
	app.dir("/srv/www", 0o755)
	app.file("/srv/www/index.html", []byte("<h1>nginx NGINX-PROTECTED-PAGE</h1>\n"), 0o644)
	app.ownedFile("/srv/www/group.html", []byte("group NGINX-GROUP-PAGE\n"), 0o640, 0, 33)
	app.file("/srv/www/private.html", []byte("private NGINX-ROOT-ONLY\n"), 0o600)
	return writeImage(t, filepath.Join(dir, "in"), "nginx", imageConfig{
		entrypoint: []string{"nginx", "-g", "daemon off;"}, env: []string{"PATH=/usr/sbin:/usr/bin:/bin"},
	}, base, libsLayer(t, dir, nginxBin), app.done())
}

// deployNginx converts the nginx image src as a user would (/etc/nginx and the web root
// protected, signed with a new key), loads it into podman as localhost/cloister-e2e/NAME, sets
// a deployment manifest for it (changed by edit, if given) and uploads its file key. It returns
// the image reference.
func deployNginx(t *testing.T, eng *engine, env *e2etest.Env, coord *coordinator, dir, src, name string, edit func(m map[string]any)) string {
	t.Helper()
	signKey, keyFile := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "files.key")
	mrsigner := keygen(t, signKey)
	ref := "localhost/cloister-e2e/" + name + ":" + eng.run
	archive := filepath.Join(dir, name+".tar")
	convert(t, src, "docker-archive:"+archive+":"+ref, "--sign-key", signKey, "--isvprodid", "6",
		"--protect", "/etc/nginx", "--protect", "/srv/www", "--key-name", "web_files_key", "--key-file", keyFile)
	eng.load(archive, ref)

	operator := env.NewUser(t, "operator")
	doc := map[string]any{
		"packages": map[string]any{"nginx": map[string]any{"mrsigner": hex.EncodeToString(mrsigner[:]), "isvprodid": 6, "min_isvsvn": 1}},
		"workloads": map[string]any{"web": map[string]any{"package": "nginx", "file_keys": []string{"web_files_key"},
			"tls":   map[string]any{"dns": []string{"web.e2e"}, "ip": []string{"127.0.0.1"}},
			"files": map[string]string{"/run/tls/chain.pem": "{{.Workload.Chain}}", "/run/tls/key.pem": "{{.Workload.Key}}"}}},
		"secrets": map[string]any{"web_files_key": map[string]any{"type": "user-defined"}},
		"users":   map[string]any{"operator": map[string]any{"certificate": operator.CertPEM, "roles": []string{"keys"}}},
		"roles":   map[string]any{"keys": map[string]any{"resource": "secrets", "names": []string{"web_files_key"}, "actions": []string{"write"}}},
	}
	if edit != nil {
		edit(doc)
	}
	m, err := json.Marshal(doc)
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
	return ref
}

// TestNginxProtectedRestarts runs Debian's nginx from a converted image with /etc/nginx and the
// web root protected: the root master reads its protected configuration, the www-data workers
// serve the protected pages with their original modes (a 0640 root:www-data page served, a 0600
// root page refused with 403), over TLS with the certificate the Coordinator delivered, which a
// client verifies against the deployment root only; the access log reaches podman logs through
// /dev/stdout. The container is restarted three times and serves again after each, with a new
// activation each time.
func TestNginxProtectedRestarts(t *testing.T) {
	eng := newEngine(t, e2etest.File(nginxBin, "apt-get install nginx-light"), e2etest.Program("ldd", "apt-get install libc-bin"))
	env := e2etest.New(t)
	dir := t.TempDir()
	coord := startCoordinator(t, env)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	src := nginxImage(t, dir, port)
	original := measureOriginalNginx(t, eng, src, dir, addr)
	ref := deployNginx(t, eng, env, coord, dir, src, "nginx", nil)

	roots := x509.NewCertPool()
	roots.AddCert(coord.root)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "web.e2e"}}}
	get := func(p string) (int, string, error) {
		res, err := hc.Get("https://" + addr + p)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, string(b), err
	}

	runBegan := time.Now()
	c := eng.start("nginx", ref, coord.Platform.Dir(), map[string]string{
		"CLOISTER_COORDINATOR": coord.Addrs.Mesh, "CLOISTER_WORKLOAD": "web", "CLOISTER_INSTANCE": "web-" + eng.run,
		"CLOISTER_RETRY_TIMEOUT": "60s",
	})
	for start := 1; start <= 4; start++ {
		began := runBegan
		if start > 1 {
			began = time.Now()
			eng.must(time.Minute, "restart", "-t", "5", c.name)
		}
		e2etest.WaitFor(t, 60*time.Second, fmt.Sprintf("nginx to serve after start %d", start), func() (bool, string) {
			code, _, err := get("/")
			return err == nil && code == 200, fmt.Sprintf("GET /: %d %v\n%s", code, err, tail(c.logs(), 2000))
		})
		t.Logf("start %d: nginx served %s after %s (the original image: %s)", start, time.Since(began).Round(time.Millisecond),
			map[bool]string{true: "podman restart", false: "podman run"}[start > 1], original[min(start, 2)-1])
		for _, tc := range []struct {
			path string
			code int
			body string
		}{
			{"/", 200, "<h1>nginx NGINX-PROTECTED-PAGE</h1>\n"},
			{"/group.html", 200, "group NGINX-GROUP-PAGE\n"},
			{"/private.html", 403, ""},
		} {
			code, body, err := get(tc.path)
			if err != nil || code != tc.code || (tc.body != "" && body != tc.body) {
				t.Errorf("start %d: GET %s = %d %q, %v; want %d %q", start, tc.path, code, body, err, tc.code, tc.body)
			}
		}
		e2etest.WaitFor(t, 10*time.Second, fmt.Sprintf("activation %d in the Coordinator's counts", start), func() (bool, string) {
			st, err := client.New(coord.Addrs.Client, coord.root).Status(t.Context())
			if err != nil {
				return false, err.Error()
			}
			return st.Activations["web"] == uint64(start), fmt.Sprintf("activations %v", st.Activations)
		})
	}
	// The access log went to /dev/stdout, written by the www-data workers.
	e2etest.WaitFor(t, 10*time.Second, "the access log in podman logs", func() (bool, string) {
		logs := c.logs()
		return strings.Count(logs, `"GET /private.html HTTP/1.1" 403`) == 4, tail(logs, 2000)
	})
	// Trusting anything but the deployment root, the client refuses nginx.
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "web.e2e"}}}
	if res, err := other.Get("https://" + addr + "/"); err == nil {
		res.Body.Close()
		t.Error("a client trusting the system roots accepted nginx' certificate")
	}
	coord.Stop(t)
}

// measureOriginalNginx runs the unconverted nginx image, with a self-signed certificate mounted
// at /run/tls, and returns how long after podman run, then after podman restart, it served.
func measureOriginalNginx(t *testing.T, eng *engine, src, dir, addr string) [2]time.Duration {
	t.Helper()
	tlsDir := filepath.Join(dir, "original-tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web.e2e"}, DNSNames: []string{"web.e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"chain.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The original image, from the OCI layout src ("oci:DIR:NAME") into podman.
	layoutDir, tagName, _ := strings.Cut(strings.TrimPrefix(src, "oci:"), ":")
	lp, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var img v1.Image
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tagName {
			img, err = lp.Image(d.Digest)
		}
	}
	if img == nil || err != nil {
		t.Fatalf("image %s in %s: %v", tagName, layoutDir, err)
	}
	id := "localhost/cloister-e2e/nginx-original:" + eng.run
	archive := filepath.Join(dir, "nginx-original.tar")
	if err := tarball.WriteToFile(archive, mustTag(t, id), img); err != nil {
		t.Fatal(err)
	}
	eng.load(archive, id)
	name := "cloister-e2e-nginx-original-" + eng.run
	t.Cleanup(func() { eng.podman(time.Minute, "rm", "-f", "-t", "2", name) })
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	serves := func() (bool, string) {
		res, err := hc.Get("https://" + addr + "/")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	}
	var took [2]time.Duration
	began := time.Now()
	eng.must(time.Minute, "run", "-d", "--name", name, "--network", "host", "-v", tlsDir+":/run/tls:ro", id)
	e2etest.WaitFor(t, 30*time.Second, "the original nginx to serve", serves)
	took[0] = time.Since(began).Round(time.Millisecond)
	began = time.Now()
	eng.must(time.Minute, "restart", "-t", "5", name)
	e2etest.WaitFor(t, 30*time.Second, "the original nginx to serve after a restart", serves)
	took[1] = time.Since(began).Round(time.Millisecond)
	eng.must(time.Minute, "rm", "-f", "-t", "5", name)
	return took
}
