package podman

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
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

// imageTime is the fixed time of every entry of the test images.
var imageTime = time.Unix(1700000000, 0).UTC()

// layerBuilder writes one image layer, a gzip-compressed tar, to a file.
// Parent directories are added as needed.
type layerBuilder struct {
	t    *testing.T
	path string
	f    *os.File
	bw   *bufio.Writer
	zw   *gzip.Writer
	tw   *tar.Writer
	dirs map[string]bool
}

func newLayer(t *testing.T, dir string) *layerBuilder {
	t.Helper()
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	b := &layerBuilder{t: t, path: f.Name(), f: f, bw: bufio.NewWriter(f), dirs: map[string]bool{"/": true}}
	b.zw, _ = gzip.NewWriterLevel(b.bw, gzip.BestSpeed)
	b.tw = tar.NewWriter(b.zw)
	return b
}

func (b *layerBuilder) header(h *tar.Header) {
	b.t.Helper()
	h.Name = strings.TrimPrefix(h.Name, "/")
	if h.ModTime.IsZero() {
		h.ModTime = imageTime
	}
	if err := b.tw.WriteHeader(h); err != nil {
		b.t.Fatal(err)
	}
}

// parents adds the missing parent directories of p.
func (b *layerBuilder) parents(p string) {
	d := path.Dir(p)
	if b.dirs[d] {
		return
	}
	b.parents(d)
	b.dir(d, 0o755)
}

func (b *layerBuilder) dir(p string, mode int64) {
	b.parents(p)
	b.dirs[p] = true
	b.header(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode})
}

func (b *layerBuilder) file(p string, content []byte, mode int64) {
	b.t.Helper()
	b.parents(p)
	b.header(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(content))})
	if _, err := b.tw.Write(content); err != nil {
		b.t.Fatal(err)
	}
}

// hostFile copies the host file host (symbolic links followed) to p.
func (b *layerBuilder) hostFile(p, host string) {
	b.t.Helper()
	f, err := os.Open(host)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.t.Fatal(err)
	}
	b.parents(p)
	b.header(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(fi.Mode().Perm()), Size: fi.Size()})
	if _, err := io.Copy(b.tw, f); err != nil {
		b.t.Fatal(err)
	}
}

func (b *layerBuilder) symlink(p, target string) {
	b.parents(p)
	b.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777})
}

// hostTree copies the host directory tree host to p, skipping the
// directories named in skip. Symbolic links that stay inside the tree are
// kept; others are replaced by a copy of what they point to.
func (b *layerBuilder) hostTree(p, host string, skip ...string) {
	b.t.Helper()
	err := filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, hp)
		ip := path.Join(p, filepath.ToSlash(rel))
		for _, s := range skip {
			if d.IsDir() && d.Name() == s {
				return filepath.SkipDir
			}
		}
		switch {
		case d.IsDir():
			b.dir(ip, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			if real, err := filepath.EvalSymlinks(hp); err == nil && strings.HasPrefix(real, host+"/") && !filepath.IsAbs(target) {
				b.symlink(ip, target)
			} else if err == nil {
				b.hostFile(ip, real)
			}
		case d.Type().IsRegular():
			b.hostFile(ip, hp)
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// done finishes the layer.
func (b *layerBuilder) done() v1.Layer {
	b.t.Helper()
	for _, c := range []io.Closer{b.tw, b.zw} {
		if err := c.Close(); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := b.bw.Flush(); err != nil {
		b.t.Fatal(err)
	}
	if err := b.f.Close(); err != nil {
		b.t.Fatal(err)
	}
	l, err := tarball.LayerFromFile(b.path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		b.t.Fatal(err)
	}
	return l
}

// baseLayer is a minimal Debian-like root: merged /usr, users root, app
// and redis, and a world-writable /tmp.
func baseLayer(t *testing.T, dir string) v1.Layer {
	b := newLayer(t, dir)
	for _, d := range []string{"/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/sbin", "/etc", "/var", "/srv", "/dev", "/proc", "/sys", "/run"} {
		b.dir(d, 0o755)
	}
	b.dir("/tmp", 0o1777)
	for name, target := range map[string]string{"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64", "/sbin": "usr/sbin"} {
		b.symlink(name, target)
	}
	b.file("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv:/usr/sbin/nologin\nredis:x:999:999:redis:/var/lib/redis:/usr/sbin/nologin\n"), 0o644)
	b.file("/etc/group", []byte("root:x:0:\napp:x:1000:\nredis:x:999:\n"), 0o644)
	b.file("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644)
	return b.done()
}

// libsLayer holds the shared libraries the host binaries need, as ldd
// finds them, at their merged-/usr paths.
func libsLayer(t *testing.T, dir string, binaries ...string) v1.Layer {
	t.Helper()
	b := newLayer(t, dir)
	seen := map[string]bool{}
	for _, bin := range binaries {
		out, err := exec.Command("ldd", bin).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", bin, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
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
			ip := lib
			for _, p := range []string{"/lib/", "/lib64/"} {
				if strings.HasPrefix(ip, p) {
					ip = "/usr" + ip
				}
			}
			if seen[ip] {
				continue
			}
			seen[ip] = true
			b.hostFile(ip, lib)
		}
	}
	return b.done()
}

// imageConfig says what an image runs.
type imageConfig struct {
	entrypoint, cmd, env []string
	user, workdir        string
	createdBy            []string // the history's build commands, one per layer
}

// writeImage writes an image of layers to the OCI layout dir, tagged name,
// and returns its reference.
func writeImage(t *testing.T, dir, name string, cfg imageConfig, layers ...v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: imageTime}
	cf.Config = v1.Config{Entrypoint: cfg.entrypoint, Cmd: cfg.cmd, Env: cfg.env, User: cfg.user, WorkingDir: cfg.workdir}
	for i, c := range cfg.createdBy {
		cf.History[i].CreatedBy = c
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":" + name
}

// ownedDir adds the directory p with an owner, a group and a mode (setgid and sticky bits
// included), as a package's postinst leaves it; missing parents are added as root 0755.
func (b *layerBuilder) ownedDir(p string, mode int64, uid, gid int) {
	b.t.Helper()
	b.parents(p)
	b.dirs[p] = true
	b.header(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: gid})
}

// ownedTree copies the host directory tree host to p with each entry's host mode, every entry
// owned by uid:gid: a tree a host user made for the image's user, such as a data directory
// initialised at build time. Symbolic links are kept as they are; other special files are left
// out.
func (b *layerBuilder) ownedTree(p, host string, uid, gid int) {
	b.t.Helper()
	err := filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, hp)
		ip := path.Join(p, filepath.ToSlash(rel))
		mode := int64(fi.Mode().Perm())
		switch {
		case d.IsDir():
			b.ownedDir(ip, mode, uid, gid)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			b.parents(ip)
			b.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: ip, Linkname: target, Mode: 0o777, Uid: uid, Gid: gid})
		case d.Type().IsRegular():
			content, err := os.ReadFile(hp)
			if err != nil {
				return err
			}
			b.ownedFile(ip, content, mode, uid, gid)
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// layoutImage returns the image of the reference "oci:DIR:NAME" that writeImage returned.
func layoutImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	dir, tagName, _ := strings.Cut(strings.TrimPrefix(ref, "oci:"), ":")
	lp, err := layout.FromPath(dir)
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
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tagName {
			img, err := lp.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image %s in %s", tagName, dir)
	return nil
}

// writeImageWith writes an image as writeImage does, with edit applied to its configuration
// first (VOLUME, STOPSIGNAL and other settings imageConfig does not hold), and returns its
// reference.
func writeImageWith(t *testing.T, dir, name string, cfg imageConfig, edit func(*v1.Config), layers ...v1.Layer) string {
	t.Helper()
	img := layoutImage(t, writeImage(t, t.TempDir(), name, cfg, layers...))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":" + name
}
