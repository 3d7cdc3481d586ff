package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultTag names an image written to an OCI layout without a tag.
const DefaultTag = "latest"

// Write stores img at ref (see [ParseReference]) and returns its digest.
// An OCI layout is created if needed; an image of the same name in it is
// replaced. Layer blobs already on disk are hard-linked into a layout on the
// same file system instead of being copied. A docker-archive file is
// written whole to a temporary file and renamed into place; without a REF
// it carries no tag. A converted image is never written into the layout
// or archive it was read from (see [CheckDestination]).
func Write(ctx context.Context, ref string, img v1.Image, opts ...Option) (v1.Hash, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if c, ok := img.(*converted); ok {
		if err := CheckDestination(c.source, ref); err != nil {
			return v1.Hash{}, err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	o := newOptions(opts)
	switch r.Transport {
	case TransportOCI:
		err = writeLayout(r, img)
	case TransportDockerArchive:
		err = writeArchive(r, img, d)
	default:
		var n name.Reference
		if n, err = name.ParseReference(r.Name); err == nil {
			err = remote.Write(n, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain))
		}
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing image %s: %w", r, err)
	}
	return d, nil
}

func writeLayout(r Reference, img v1.Image) error {
	tag := r.Name
	if tag == "" {
		tag = DefaultTag
	}
	p, err := layout.FromPath(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		p, err = layout.Write(r.Path, empty.Index)
	}
	if err != nil {
		return err
	}
	if err := linkBlobs(r.Path, img); err != nil {
		return err
	}
	ann := map[string]string{annotationRefName: tag}
	return p.ReplaceImage(img, match.Annotation(annotationRefName, tag), layout.WithAnnotations(ann))
}

// linkBlobs hard-links the layers that are files on disk into the layout's
// blob directory, where the layout writer then finds them present. Layers
// on another file system are left for the writer to copy.
func linkBlobs(dir string, img v1.Image) error {
	bf, ok := img.(interface{ blobFiles() map[v1.Hash]string })
	if !ok {
		return nil
	}
	for d, src := range bf.blobFiles() {
		dst := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		_ = os.Link(src, dst) // a failure leaves the copy to the layout writer
	}
	return nil
}

func writeArchive(r Reference, img v1.Image, d v1.Hash) error {
	var ref name.Reference
	var err error
	if r.Name != "" {
		ref, err = name.ParseReference(r.Name)
	} else {
		ref, err = name.NewDigest("cloister.invalid/image@" + d.String())
	}
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.Path), ".cloister-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tarball.Write(ref, img, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), r.Path)
}

// CheckDestination returns an error when dst names the same OCI layout
// directory as src (whatever the tags) or the same docker-archive file, as
// a converted image must not be written there: a layout keeps every blob
// it ever received, so the source's layers, with the plaintext of the
// protected files, would stay next to the converted image; an archive would
// be replaced while it is read, with any other image it holds. References
// that do not parse, registries, and paths that do not exist yet are never
// the same.
func CheckDestination(src, dst string) error {
	s, err := ParseReference(src)
	if err != nil {
		return nil
	}
	d, err := ParseReference(dst)
	if err != nil || s.Transport != d.Transport || s.Transport == TransportDocker {
		return nil
	}
	sfi, err := os.Stat(s.Path)
	if err != nil {
		return nil
	}
	dfi, err := os.Stat(d.Path)
	if err != nil || !os.SameFile(sfi, dfi) {
		return nil
	}
	if s.Transport == TransportOCI {
		return fmt.Errorf("destination %s: %s is the OCI layout of the source %s; a layout keeps every blob it holds, so the source's layers, with the plaintext of the protected files, would stay next to the converted image: expected another directory",
			d, d.Path, s)
	}
	return fmt.Errorf("destination %s: %s is the archive of the source %s; writing it would replace the source, and any other image in it, while it is read: expected another file",
		d, d.Path, s)
}
