package kube

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// redisBin is Debian's redis-server (package redis-server), the unmodified program converted.
const redisBin = "/usr/bin/redis-server"

// tarLayer builds one uncompressed layer in memory.
type tarLayer struct {
	t    *testing.T
	buf  bytes.Buffer
	tw   *tar.Writer
	dirs map[string]bool
}

func newTarLayer(t *testing.T) *tarLayer {
	l := &tarLayer{t: t, dirs: map[string]bool{"/": true}}
	l.tw = tar.NewWriter(&l.buf)
	return l
}

func (l *tarLayer) header(h *tar.Header) {
	l.t.Helper()
	l.parents(h.Name)
	h.Name = strings.TrimPrefix(h.Name, "/")
	h.ModTime, h.Format = time.Unix(1700000000, 0), tar.FormatPAX
	if err := l.tw.WriteHeader(h); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) parents(p string) {
	d := path.Dir(p)
	if l.dirs[d] {
		return
	}
	l.dirs[d] = true
	l.parents(d)
	if err := l.tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) dir(p string, mode int64) {
	l.dirs[p] = true
	l.header(&tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: mode})
}

func (l *tarLayer) symlink(p, target string) {
	l.header(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
}

func (l *tarLayer) file(p string, b []byte, mode int64) {
	l.header(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(b))})
	if _, err := l.tw.Write(b); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) hostFile(p, host string) {
	l.t.Helper()
	b, err := os.ReadFile(host)
	if err != nil {
		l.t.Fatal(err)
	}
	l.file(p, b, 0o755)
}

func (l *tarLayer) done() v1.Layer {
	l.t.Helper()
	if err := l.tw.Close(); err != nil {
		l.t.Fatal(err)
	}
	b := l.buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		l.t.Fatal(err)
	}
	return layer
}

// redisSource writes an ordinary (not yet confidential) Redis image, as a Dockerfile
// `FROM debian; apt-get install redis-server` would hold it, to the OCI layout dir and returns
// its reference: a minimal merged-/usr root, the libraries ldd names and redis-server.
func redisSource(t *testing.T, dir string) string {
	t.Helper()
	base := newTarLayer(t)
	for _, d := range []string{"/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/etc", "/var/lib", "/dev", "/proc", "/sys", "/run"} {
		base.dir(d, 0o755)
	}
	base.dir("/tmp", 0o1777)
	for name, target := range map[string]string{"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64"} {
		base.symlink(name, target)
	}
	base.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/var/lib/redis:/usr/sbin/nologin\n"), 0o644)
	base.file("/etc/group", []byte("root:x:0:\nredis:x:999:\n"), 0o644)
	base.file("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644)

	libs := newTarLayer(t)
	out, err := exec.Command("ldd", redisBin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", redisBin, err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		p := lib
		if strings.HasPrefix(p, "/lib/") || strings.HasPrefix(p, "/lib64/") {
			p = "/usr" + p
		}
		if !libs.dirs[p] {
			libs.dirs[p] = true
			libs.hostFile(p, lib)
		}
	}
	app := newTarLayer(t)
	app.hostFile("/usr/bin/redis-server", redisBin)
	app.header(&tar.Header{Name: "/var/lib/redis", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 999, Gid: 999})

	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base.done(), libs.done(), app.done())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"redis-server"}, Cmd: []string{"/etc/redis/redis.conf"},
		Env: []string{"PATH=/usr/bin:/bin"}, User: "redis", WorkingDir: "/var/lib/redis"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "redis"})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":redis"
}
