package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rsa"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testDir holds what the tests share, made on first use and removed after
// the tests: the bench image. Fuzz workers, which need none, make nothing.
var testDir = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "image-test-")
	if err != nil {
		panic(err)
	}
	made.Store(true)
	return dir
})

// testLauncher returns cloister-launch, built once per test run and shared
// with the other packages' tests (e2etest.Build). Fuzz workers never build it.
func testLauncher() string {
	b, err := e2etest.Build()
	if err != nil {
		panic(err)
	}
	return b.Launcher
}

// made reports whether testDir was made.
var made atomic.Bool

func TestMain(m *testing.M) {
	code := m.Run()
	if made.Load() {
		os.RemoveAll(testDir())
	}
	os.Exit(code)
}

// testKey is the signing key of enclave/testdata.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	b, err := os.ReadFile("../enclave/testdata/signer.pem")
	if err != nil {
		panic(err)
	}
	k, err := enclave.ParseKey(b)
	if err != nil {
		panic(err)
	}
	return k
})

// fileKey is a fixed protected-file key.
var fileKey = bytes.Repeat([]byte{7}, 32)

// te is a tar entry of a test layer.
type te struct {
	name string
	typ  byte   // tar type; 0 means a regular file
	body string // content of a regular file
	link string
	mode int64
	uid  int
	gid  int
	pax  map[string]string // PAX records (extended attributes)
	// uname and gname are the owner's names; mtime, when not 0, the time
	// (Unix seconds; default 1600000000).
	uname, gname string
	mtime        int64
}

func file(name, body string) te         { return te{name: name, body: body} }
func dir(name string) te                { return te{name: name, typ: tar.TypeDir} }
func symlink(name, target string) te    { return te{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) te   { return te{name: name, typ: tar.TypeLink, link: target} }
func whiteout(name string) te           { return te{name: name, body: ""} }
func rawEntry(name string, typ byte) te { return te{name: name, typ: typ} }

// tarBytes returns an uncompressed tar of the entries.
func tarBytes(t testing.TB, entries ...te) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		mtime := e.mtime
		if mtime == 0 {
			mtime = 1600000000
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Uname: e.uname, Gname: e.gname, ModTime: time.Unix(mtime, 0), PAXRecords: e.pax}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gz compresses b.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// gzLayer returns a gzip-compressed layer of the tar b, with its diff ID.
func gzLayer(t testing.TB, b []byte) v1.Layer {
	t.Helper()
	z := gz(t, b)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(z)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage builds an OCI image from layers of entries, running argv.
func testImage(t testing.TB, argv []string, layers ...[]te) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, entries := range layers {
		ls = append(ls, gzLayer(t, tarBytes(t, entries...)))
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), ls...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(1650000000, 0).UTC()}
	cf.Config.Entrypoint = argv
	cf.Config.Env = []string{"PATH=/usr/bin:/bin", "GREETING=hello"}
	cf.Config.WorkingDir = "/srv"
	cf.Config.User = "app"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// source wraps img.
func source(t testing.TB, img v1.Image) *Source {
	t.Helper()
	s, err := FromImage("test", img)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testConfig is a conversion config protecting the given paths.
func testConfig(t testing.TB, protect ...string) Config {
	return Config{Protect: protect, FileKey: fileKey, SignKey: testKey(), Launcher: testLauncher(),
		ISVProdID: 3, ISVSVN: 2, TempDir: t.TempDir()}
}

// convert converts img with cfg.
func convert(t testing.TB, img v1.Image, cfg Config) *Result {
	t.Helper()
	res, err := Convert(context.Background(), source(t, img), cfg)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	t.Cleanup(func() { res.Close() })
	return res
}

// layerFiles returns the regular files of an image layer by path, and its
// whole uncompressed tar.
func layerFiles(t testing.TB, l v1.Layer) (map[string][]byte, []byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, raw
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
}

// signedManifest reads /cloister/enclave.json of a converted image.
func signedManifest(t testing.TB, img v1.Image) *enclave.Signed {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := layerFiles(t, ls[len(ls)-1])
	s, err := enclave.Parse(files["cloister/enclave.json"])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mergedView stacks the layers of img as a runtime does.
func mergedView(t testing.TB, img v1.Image) *view {
	t.Helper()
	src := source(t, img)
	lim := Limits{}.withDefaults()
	idx, err := indexLayers(context.Background(), src, &lim, 0, &tracker{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := mergeLayers(idx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
