package readme

import (
	"archive/tar"
	"bytes"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var update = flag.Bool("update", false, "rewrite examples/image from its generator")

// exampleFiles are the files of the tour's image. /etc/app/secret.conf is the one the tour
// protects.
var exampleFiles = []struct {
	name, content string
}{
	{"app/", ""},
	{"app/hello.txt", "Hello from a confidential container.\n"},
	{"etc/", ""},
	{"etc/app/", ""},
	{"etc/app/secret.conf", "api_token=example-only-not-a-secret\n"},
}

// exampleImage builds the tour's image: one layer with exampleFiles, fixed times, so that the
// same bytes come out every time.
func exampleImage(t *testing.T) v1.Image {
	t.Helper()
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range exampleFiles {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.content)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.name[len(f.name)-1] == '/' {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{"/app/hello"}
	cf.Config.WorkingDir = "/app"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestExampleImage checks that examples/image is what exampleImage makes; -update rewrites it.
func TestExampleImage(t *testing.T) {
	dir := t.TempDir()
	if *update {
		dir = filepath.Join(moduleRoot(t), "examples", "image")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(exampleImage(t), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	if *update {
		return
	}
	want := filepath.Join(moduleRoot(t), "examples", "image")
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		got, _ := os.ReadFile(path)
		shipped, err := os.ReadFile(filepath.Join(want, rel))
		if err != nil || !bytes.Equal(got, shipped) {
			t.Errorf("examples/image/%s differs from what the generator makes (%v); run go test ./e2e/readme -run TestExampleImage -update", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
