package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"runtime"

	"github.com/cloister-dev/cloister/enclave"
	"golang.org/x/sync/errgroup"
)

// layerIndex is what the first pass learned about one layer: its entries in
// tar order, each regular file with its SHA-256 and size.
type layerIndex struct {
	entries []entry
	// passwd is the content of the layer's last /etc/passwd entry of at
	// most maxPasswd bytes, and passwdAt that entry's index (-1: none). The
	// converter reads the image's user from it.
	passwd   []byte
	passwdAt int
}

// passwdPath is the user database the image's USER is looked up in.
const passwdPath = "/etc/passwd"

// maxPasswd bounds the /etc/passwd content kept per layer (at most 256
// layers, so 16 MiB in all); a larger file is not read.
const maxPasswd = 64 << 10

// indexLayers reads every layer of src, workers at a time (0 means
// GOMAXPROCS), and indexes it.
// Progress goes to t. Every byte of every layer is read once; the blobs'
// digests are checked (or learned) on the way.
func indexLayers(ctx context.Context, src *Source, lim *Limits, workers int, t *tracker) ([]*layerIndex, error) {
	if len(src.layers) > lim.MaxLayers {
		return nil, limitf("%d layers; expected at most %d", len(src.layers), lim.MaxLayers)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	idx := make([]*layerIndex, len(src.layers))
	var b budget
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, l := range src.layers {
		g.Go(func() error {
			li, err := indexLayer(ctx, l, src, lim, &b, t)
			if err != nil {
				return inLayer(i+1, err)
			}
			idx[i] = li
			t.layersDone.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return idx, nil
}

// indexLayer reads one layer and hashes each regular file as it streams by.
func indexLayer(ctx context.Context, l *srcLayer, src *Source, lim *Limits, b *budget, t *tracker) (*layerIndex, error) {
	li := &layerIndex{passwdAt: -1}
	names := map[string]string{} // user and group names, stored once per layer
	intern := func(s string) string {
		if v, ok := names[s]; ok {
			return v
		}
		if len(names) < 1024 {
			names[s] = s
		}
		return s
	}
	err := readLayer(ctx, l, src.mediaType, lim, &t.bytes, func(r io.Reader) error {
		return walkTar(r, lim, b, func(i int, _ *tar.Header, e *entry, body io.Reader) error {
			e.uname, e.gname = intern(e.uname), intern(e.gname)
			if e.kind == kindFile {
				var keep *bytes.Buffer
				if e.path == passwdPath && e.size <= maxPasswd {
					keep = &bytes.Buffer{}
					body = io.TeeReader(body, keep)
				}
				sum, n, err := enclave.HashReader(body)
				if err != nil {
					return readError("reading file content", err)
				}
				if n != e.size {
					return unsafef("file content of %d bytes; its header says %d", n, e.size)
				}
				e.sum = sum
				t.files.add(1)
				if keep != nil {
					li.passwd, li.passwdAt = keep.Bytes(), i
				}
			}
			li.entries = append(li.entries, *e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return li, nil
}
