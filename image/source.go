package image

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxConfigSize bounds an image configuration, in bytes.
const maxConfigSize = 8 << 20

// Source is an image as it is stored: its configuration and its layer
// blobs, read without any daemon. [Open] reads one from a transport,
// [FromImage] wraps any go-containerregistry image. A Source is read by
// one conversion, inspection or verification at a time.
type Source struct {
	name      string
	rawConfig []byte
	config    *v1.ConfigFile
	mediaType types.MediaType // of the manifest: OCI or Docker schema 2
	digest    v1.Hash         // of the manifest, when the transport has one
	layers    []*srcLayer
	close     func() error
}

// srcLayer is one layer blob as stored.
type srcLayer struct {
	// desc describes the blob. Its Digest is zero when the transport does
	// not record it (docker-archive); the first read computes it.
	desc   v1.Descriptor
	diffID v1.Hash
	open   func() (io.ReadCloser, error)
	// file is the blob's own file on disk, when there is one (OCI layout),
	// so that a writer on the same file system can link it instead of
	// copying it.
	file string
}

// Name returns the reference the Source was opened from.
func (s *Source) Name() string { return s.name }

// Config returns a copy of the image configuration.
func (s *Source) Config() *v1.ConfigFile { return s.config.DeepCopy() }

// Layers returns the number of layers.
func (s *Source) Layers() int { return len(s.layers) }

// Close releases the files the Source holds open.
func (s *Source) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// compressedSize returns the stored size of all layers, or 0 if any is unknown.
func (s *Source) compressedSize() int64 {
	var n int64
	for _, l := range s.layers {
		if l.desc.Size <= 0 {
			return 0
		}
		n += l.desc.Size
	}
	return n
}

// FromImage returns the Source of a go-containerregistry image: its
// manifest, configuration and layer blobs as they are stored. Foreign
// (non-distributable) layers are refused.
func FromImage(name string, img v1.Image) (*Source, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", name, err)
	}
	if m.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("image %s: configuration of %d bytes; expected at most %d", name, m.Config.Size, maxConfigSize)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: configuration: %w", name, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: digest: %w", name, err)
	}
	s := &Source{name: name, mediaType: m.MediaType, digest: d}
	if s.mediaType == "" {
		s.mediaType = types.OCIManifestSchema1
	}
	if err := s.setConfig(raw); err != nil {
		return nil, err
	}
	if len(m.Layers) != len(s.config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image %s: the manifest lists %d layers and the configuration %d diff_ids; expected equal counts",
			name, len(m.Layers), len(s.config.RootFS.DiffIDs))
	}
	for i, d := range m.Layers {
		if !d.MediaType.IsDistributable() {
			return nil, fmt.Errorf("image %s: layer %d has media type %s: foreign layers are not supported", name, i+1, d.MediaType)
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %d: %w", name, i+1, err)
		}
		s.layers = append(s.layers, &srcLayer{desc: d, diffID: s.config.RootFS.DiffIDs[i], open: l.Compressed})
	}
	return s, nil
}

// setConfig parses and keeps the raw configuration.
func (s *Source) setConfig(raw []byte) error {
	if len(raw) > maxConfigSize {
		return fmt.Errorf("image %s: configuration of %d bytes; expected at most %d", s.name, len(raw), maxConfigSize)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("image %s: configuration: %w", s.name, err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return fmt.Errorf("image %s: os %q; expected linux", s.name, cfg.OS)
	}
	s.rawConfig, s.config = raw, cfg
	return nil
}

// setBlobFiles records, for an OCI layout in dir, the file of each blob.
func (s *Source) setBlobFiles(dir string) {
	for _, l := range s.layers {
		f := filepath.Join(dir, "blobs", l.desc.Digest.Algorithm, l.desc.Digest.Hex)
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() == l.desc.Size {
			l.file = f
		}
	}
}
