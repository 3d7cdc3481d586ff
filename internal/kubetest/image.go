package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ProgramImage returns a one-layer image holding only the static program binary, as
// /NAME (NAME its base name), which is the image's entrypoint; args are its default command.
// The image is for linux on the machine's architecture.
func ProgramImage(binary string, args ...string) (v1.Image, error) {
	prog, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(binary)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Name: base, Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(prog); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerTar := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/" + base}
	cfg.Config.Cmd = args
	cfg.Config.Env = []string{"PATH=/"}
	return mutate.ConfigFile(img, cfg)
}

// LoadImage writes img as a docker-archive tagged ref and imports it into the node's
// containerd (see [Node.ImportImage]); pods then run it by that name with imagePullPolicy
// Never. ref should name a registry that is never contacted, such as "localhost/NAME:TAG".
func (c *Cluster) LoadImage(ctx context.Context, ref string, img v1.Image) error {
	n := c.Node
	if n == nil {
		n = c.pendingNode
	}
	if n == nil {
		return fmt.Errorf("load image %s: the cluster has no node (start it WithNode)", ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("load image: %w", err)
	}
	f, err := os.CreateTemp(c.Dir, "image-*.tar")
	if err != nil {
		return err
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write image %s: %w", ref, err)
	}
	if err := n.ImportImage(ctx, path); err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	return nil
}

// pauseImage writes the pause image archive below Dir and returns its path.
func (c *Cluster) pauseImage() (string, error) {
	img, err := ProgramImage(c.bins.Pause)
	if err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	path := filepath.Join(c.Dir, "pause.tar")
	if err := tarball.WriteToFile(path, mustTag(PauseImage), img); err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	return path, nil
}

func mustTag(ref string) name.Tag {
	t, err := name.NewTag(ref)
	if err != nil {
		panic(err)
	}
	return t
}
