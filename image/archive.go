package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Bounds of a docker-archive file's own structure.
const (
	maxArchiveEntries  = 100_000
	maxArchiveManifest = 4 << 20
	maxArchiveLinks    = 8
)

// archiveEntry locates one file inside a docker-archive tar.
type archiveEntry struct {
	off, size int64
	typ       byte
	link      string
}

// archiveImage is one image of a docker-archive manifest.json.
type archiveImage struct {
	Config       string
	RepoTags     []string
	Layers       []string
	LayerSources map[string]v1.Descriptor `json:",omitempty"`
}

// openArchive reads an image from a docker-archive file (the format of
// `docker save` and `podman save`). Layers may be compressed or not; an
// uncompressed layer stays uncompressed, so its blob is its diff ID and
// nothing is ever recompressed. Layer files are read in place.
func openArchive(r Reference) (*Source, error) {
	f, err := os.Open(r.Path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	s, err := readArchive(f, r)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	s.close = f.Close
	return s, nil
}

// archiveReader is a docker-archive file: read sequentially to index it,
// at offsets to read its files.
type archiveReader interface {
	io.ReadSeeker
	io.ReaderAt
}

func readArchive(f archiveReader, r Reference) (*Source, error) {
	entries, err := scanArchive(f)
	if err != nil {
		return nil, err
	}
	raw, err := archiveFile(f, entries, "manifest.json", maxArchiveManifest)
	if err != nil {
		return nil, err
	}
	var images []archiveImage
	if err := json.Unmarshal(raw, &images); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	im, err := pickArchiveImage(images, r.Name)
	if err != nil {
		return nil, err
	}
	if len(im.LayerSources) > 0 {
		return nil, errors.New("foreign layers are not supported")
	}
	cfg, err := archiveFile(f, entries, im.Config, maxConfigSize)
	if err != nil {
		return nil, err
	}
	s := &Source{name: r.String(), mediaType: types.DockerManifestSchema2}
	if err := s.setConfig(cfg); err != nil {
		return nil, err
	}
	if len(im.Layers) != len(s.config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest.json lists %d layers and the configuration %d diff_ids; expected equal counts",
			len(im.Layers), len(s.config.RootFS.DiffIDs))
	}
	for i, lp := range im.Layers {
		e, err := archiveLookup(entries, lp)
		if err != nil {
			return nil, err
		}
		var magic [4]byte
		n, _ := f.ReadAt(magic[:], e.off)
		l := &srcLayer{diffID: s.config.RootFS.DiffIDs[i], desc: v1.Descriptor{Size: e.size},
			open: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, e.off, e.size)), nil }}
		l.desc.MediaType = layerMediaType(magic[:min(int64(n), e.size)], s.mediaType)
		switch {
		case l.desc.MediaType == types.DockerUncompressedLayer:
			l.desc.Digest = l.diffID
		case strings.HasPrefix(lp, "blobs/sha256/") && len(lp) == len("blobs/sha256/")+64:
			l.desc.Digest = v1.Hash{Algorithm: "sha256", Hex: lp[len("blobs/sha256/"):]}
		}
		if l.desc.MediaType == types.OCILayerZStd {
			s.mediaType = types.OCIManifestSchema1
		}
		s.layers = append(s.layers, l)
	}
	return s, nil
}

// scanArchive indexes the files of the archive tar by name, reading only
// headers.
func scanArchive(f archiveReader) (map[string]archiveEntry, error) {
	entries := map[string]archiveEntry{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
		if len(entries) == maxArchiveEntries {
			return nil, limitf("more than %d files in the archive", maxArchiveEntries)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		entries[archiveName(hdr.Name)] = archiveEntry{off: off, size: hdr.Size, typ: hdr.Typeflag, link: hdr.Linkname}
	}
}

func archiveName(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }

// archiveLookup finds a regular file of the archive, following its links.
func archiveLookup(entries map[string]archiveEntry, p string) (archiveEntry, error) {
	name := archiveName(p)
	for range maxArchiveLinks {
		e, ok := entries[name]
		switch {
		case !ok:
			return archiveEntry{}, fmt.Errorf("the archive has no file %q", p)
		case e.typ == tar.TypeReg: // the tar reader turns legacy TypeRegA into TypeReg
			return e, nil
		case e.typ == tar.TypeSymlink:
			name = archiveName(path.Join(path.Dir(name), e.link))
		case e.typ == tar.TypeLink:
			name = archiveName(e.link)
		default:
			return archiveEntry{}, fmt.Errorf("archive file %q is not a regular file", p)
		}
	}
	return archiveEntry{}, fmt.Errorf("archive file %q: more than %d links", p, maxArchiveLinks)
}

// archiveFile reads a small file of the archive.
func archiveFile(f archiveReader, entries map[string]archiveEntry, p string, limit int64) ([]byte, error) {
	e, err := archiveLookup(entries, p)
	if err != nil {
		return nil, err
	}
	if e.size > limit {
		return nil, limitf("archive file %q of %d bytes; expected at most %d", p, e.size, limit)
	}
	b := make([]byte, e.size)
	if _, err := f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("reading archive file %q: %w", p, err)
	}
	return b, nil
}

// pickArchiveImage chooses the image named ref, or the only image.
func pickArchiveImage(images []archiveImage, ref string) (*archiveImage, error) {
	if ref == "" {
		if len(images) != 1 {
			return nil, fmt.Errorf("the archive holds %d images; name one (docker-archive:FILE:REF)", len(images))
		}
		return &images[0], nil
	}
	want, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	var tags []string
	for i, im := range images {
		for _, t := range im.RepoTags {
			if got, err := name.ParseReference(t); err == nil && got.Name() == want.Name() {
				return &images[i], nil
			}
			tags = append(tags, t)
		}
	}
	return nil, fmt.Errorf("the archive has no image %s; it has %s", ref, strings.Join(tags, ", "))
}
