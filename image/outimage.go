package image

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// outLayer is a layer of a written image: its descriptor and its blob.
type outLayer struct {
	desc  v1.Descriptor
	layer layerBlob
}

// layerBlob is a stored layer that knows its diff ID.
type layerBlob interface {
	partial.CompressedLayer
	DiffID() (v1.Hash, error)
}

// outImage is the converted image: a configuration and manifest computed
// once, byte for byte deterministic, and layer blobs that are either the
// source's own or files the converter wrote.
type outImage struct {
	rawConfig   []byte
	rawManifest []byte
	mediaType   types.MediaType
	layers      []outLayer
}

var _ partial.CompressedImageCore = (*outImage)(nil)

// newOutImage builds the manifest for cfg and layers, in the manifest media
// type mt (OCI or Docker schema 2).
func newOutImage(mt types.MediaType, cfg *v1.ConfigFile, layers []outLayer) (v1.Image, error) {
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = nil
	for _, l := range layers {
		d, err := l.layer.DiffID()
		if err != nil {
			return nil, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, err
	}
	cfgType := types.OCIConfigJSON
	if mt == types.DockerManifestSchema2 {
		cfgType = types.DockerConfigJSON
	} else {
		mt = types.OCIManifestSchema1
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: mt, Config: v1.Descriptor{MediaType: cfgType, Size: cfgSize, Digest: cfgHash}}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.desc)
	}
	rawManifest, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	img, err := partial.CompressedToImage(&outImage{rawConfig: rawCfg, rawManifest: rawManifest, mediaType: mt, layers: layers})
	if err != nil {
		return nil, err
	}
	c := &converted{Image: img, files: map[v1.Hash]string{}}
	for _, l := range layers {
		if bf, ok := l.layer.(interface{ blobFile() string }); ok && bf.blobFile() != "" {
			c.files[l.desc.Digest] = bf.blobFile()
		}
	}
	return c, nil
}

// converted is a written image that knows which of its blobs are files on
// disk, so that [Write] can link them instead of copying them, and the
// reference of its source, so that [Write] can refuse to write into it.
type converted struct {
	v1.Image
	files  map[v1.Hash]string
	source string
}

func (c *converted) blobFiles() map[v1.Hash]string { return c.files }

// RawConfigFile, MediaType, RawManifest and LayerByDigest implement
// partial.CompressedImageCore.

func (o *outImage) RawConfigFile() ([]byte, error)      { return o.rawConfig, nil }
func (o *outImage) MediaType() (types.MediaType, error) { return o.mediaType, nil }
func (o *outImage) RawManifest() ([]byte, error)        { return o.rawManifest, nil }

func (o *outImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range o.layers {
		if l.desc.Digest == h {
			return l.layer, nil
		}
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}
