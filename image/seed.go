package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"golang.org/x/sync/errgroup"
)

// extractSeeds reads again each layer that holds the content of a seeded
// volume's regular file and copies that content to a temporary file in
// dir, workers layers at a time; the added layer takes it from there and
// checks it against the digest of the first reading.
func extractSeeds(ctx context.Context, src *Source, v *view, vp *volumePlan, cfg *Config, dir string, t *tracker) error {
	want := map[ref]int{} // the entry holding a content → its element of vp.seed
	for i, r := range vp.seedFrom {
		if r != noRef {
			want[r] = i
		}
	}
	layers := map[int32]bool{}
	for r := range want {
		layers[r.layer] = true
	}
	for l := range layers {
		t.layers++
		t.total += src.layers[l].desc.Size
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Workers)
	for _, l := range slices.Sorted(maps.Keys(layers)) {
		li := v.idx[l]
		g.Go(func() error {
			err := readLayer(ctx, src.layers[l], src.mediaType, &cfg.Limits, &t.bytes, func(r io.Reader) error {
				return walkTar(r, &cfg.Limits, nil, func(i int, _ *tar.Header, e *entry, body io.Reader) error {
					if i >= len(li.entries) || li.entries[i].path != e.path || li.entries[i].kind != e.kind {
						return fmt.Errorf("entry %d differs from the first reading of the layer: did the image change?", i+1)
					}
					k, ok := want[ref{l, int32(i)}]
					if !ok {
						return nil
					}
					name, err := writeTemp(dir, "seed-*", func(w io.Writer) error {
						_, err := io.Copy(w, body)
						return err
					})
					vp.seed[k].file = name // each element belongs to one layer's goroutine
					return err
				})
			})
			if err != nil {
				return inLayer(int(l)+1, err)
			}
			t.layersDone.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, r := range vp.seedFrom {
		if r != noRef && vp.seed[i].file == "" {
			return fmt.Errorf("seed file %s was not found again when the layers were read a second time: did the image change?", vp.seed[i].hdr.Name)
		}
	}
	return nil
}
