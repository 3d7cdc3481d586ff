package podman

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// memcachedBin is Debian's memcached (built with TLS).
const memcachedBin = "/usr/bin/memcached"

// memcachedImage builds an image of Debian's unmodified memcached that runs as nobody, serving
// TLS only on port with the certificate and key the Coordinator delivers to /run/memcached.
func memcachedImage(t *testing.T, dir string, port int) string {
	t.Helper()
	app := newLayer(t, dir)
	app.hostFile(memcachedBin, memcachedBin)
	app.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), 0o644)
	app.file("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	app.dir("/run/memcached", 0o755)
	return writeImage(t, filepath.Join(dir, "in"), "memcached", imageConfig{
		entrypoint: []string{memcachedBin, "-l", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "0", "-m", "16",
			"-Z", "-o", "ssl_chain_cert=/run/memcached/chain.pem,ssl_key=/run/memcached/key.pem"},
		env: []string{"PATH=/usr/bin:/bin"}, user: "nobody",
	}, baseLayer(t, dir), libsLayer(t, dir, memcachedBin), app.done())
}

// TestMemcachedAsNobody runs Debian's memcached, converted, as the image's user nobody: it reads
// the key the Coordinator delivered (the application's user's alone), answers a version command
// over TLS verified against the deployment root only, and stops with status 0 on podman stop.
// The delivered key, read from the container's /dev/shm while it runs, is not in its layer after.
func TestMemcachedAsNobody(t *testing.T) {
	eng := newEngine(t, e2etest.File(memcachedBin, "apt-get install memcached"), e2etest.Program("ldd", "apt-get install libc-bin"))
	env := e2etest.New(t)
	dir := t.TempDir()
	coord := startCoordinator(t, env)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	signKey := filepath.Join(dir, "signer.pem")
	keygen(t, signKey)
	ref := "localhost/cloister-e2e/memcached:" + eng.run
	archive := filepath.Join(dir, "memcached.tar")
	conv := convert(t, memcachedImage(t, dir, port), "docker-archive:"+archive+":"+ref, "--sign-key", signKey, "--isvprodid", "10")
	t.Logf("convert: %d trusted files, memory_bytes %d, warnings %q", conv.Files, conv.MemoryBytes, conv.Warnings)
	eng.load(archive, ref)
	doc := manifestFromEntry(t, conv, "cache", func(w map[string]any) {
		w["tls"] = map[string]any{"dns": []string{"cache"}}
		w["files"] = map[string]string{"/run/memcached/chain.pem": "{{.Workload.Chain}}", "/run/memcached/key.pem": "{{.Workload.Key}}"}
	})
	setManifest(t, env, coord, doc, nil)

	began := time.Now()
	c := eng.runArgs("memcached", ref, launchArgs(coord.Platform.Dir(), coord, "cache")...)
	roots := x509.NewCertPool()
	roots.AddCert(coord.root)
	var answer string
	e2etest.WaitFor(t, 60*time.Second, "memcached to answer version over TLS", func() (bool, string) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "cache"})
		if err != nil {
			if !c.running() {
				t.Fatalf("memcached exited:\n%s", c.logs())
			}
			return false, err.Error()
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("version\r\n")); err != nil {
			return false, err.Error()
		}
		if answer, err = bufio.NewReader(conn).ReadString('\n'); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Logf("memcached answered %q %s after podman run", strings.TrimSpace(answer), time.Since(began).Round(time.Millisecond))
	if !strings.HasPrefix(answer, "VERSION 1.") {
		t.Errorf("version = %q; want VERSION 1.…", answer)
	}
	if top := eng.must(30*time.Second, "top", c.name, "user", "comm"); !strings.Contains(top, "nobody") || !strings.Contains(top, "memcached") {
		t.Errorf("podman top: want memcached running as nobody:\n%s", top)
	}
	secrets := map[string][]byte{"private key": pemKey}
	upper, static := c.paths()
	if os.Geteuid() == 0 {
		key, err := os.ReadFile(filepath.Join(static, "shm", "cloister-delivered/run/memcached/key.pem"))
		if err != nil || !bytes.Contains(key, pemKey) {
			t.Fatalf("while memcached runs, its /dev/shm holds no delivered key: %v", err)
		}
		secrets["delivered key"] = key
	}
	if code := c.stop(10 * time.Second); code != 0 {
		t.Errorf("memcached exited with %d after podman stop; want 0\n%s", code, c.logs())
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{upper, static} {
			if found := scanBlobs(t, d, secrets); len(found) > 0 {
				t.Errorf("after stop: found %v", found)
			}
		}
	}
	coord.Stop(t)
}
