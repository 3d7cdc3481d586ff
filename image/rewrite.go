package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
	"golang.org/x/sync/errgroup"
)

// encrypted is one protected file the converter encrypted.
type encrypted struct {
	file enclave.ProtectedFile
	tmp  string      // the ciphertext, in the temporary directory
	hdr  *tar.Header // the header of the entry that made the path, for owner and mode
}

// rewriter runs the second pass: it reads again each layer that holds
// protected content, writes it without those entries, and encrypts each
// protected file from the entry that holds its content.
type rewriter struct {
	src *Source
	v   *view
	p   *plan
	cfg *Config
	dir string
	t   *tracker
	mu  sync.Mutex // guards out and plain
	out map[string]*encrypted
	// plain holds the protected content small enough to be searched for
	// in the image's metadata (see searchable).
	plain []plaintext
	lays  []*fileLayer // by layer index; nil for layers copied as they are
}

// run rewrites every layer the plan marks, workers at a time.
func (rw *rewriter) run(ctx context.Context) error {
	rw.out = map[string]*encrypted{}
	rw.lays = make([]*fileLayer, len(rw.src.layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(rw.cfg.Workers)
	for l, ok := range rw.p.rewrite {
		if !ok {
			continue
		}
		g.Go(func() error {
			fl, err := rw.layer(ctx, l)
			if err != nil {
				return inLayer(l+1, err)
			}
			rw.lays[l] = fl
			rw.t.layersDone.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for pp := range rw.p.protected {
		if e := rw.out[pp]; e == nil || e.hdr == nil || e.tmp == "" {
			return fmt.Errorf("protected file %s was not found again when the layers were read a second time: did the image change?", pp)
		}
	}
	return nil
}

// layer rewrites layer l to a new layer file.
func (rw *rewriter) layer(ctx context.Context, l int) (*fileLayer, error) {
	lw, err := newLayerWriter(rw.dir, gzipLevel)
	if err != nil {
		return nil, err
	}
	li := rw.v.idx[l]
	err = readLayer(ctx, rw.src.layers[l], rw.src.mediaType, &rw.cfg.Limits, &rw.t.bytes, func(r io.Reader) error {
		return walkTar(r, &rw.cfg.Limits, nil, func(i int, hdr *tar.Header, e *entry, body io.Reader) error {
			if i >= len(li.entries) || li.entries[i].path != e.path || li.entries[i].kind != e.kind {
				return fmt.Errorf("entry %d differs from the first reading of the layer: did the image change?", i+1)
			}
			r := ref{int32(l), int32(i)}
			if pp, ok := rw.p.defs[r]; ok {
				rw.setHeader(pp, hdr)
			}
			if paths := rw.p.sources[r]; len(paths) > 0 {
				if err := rw.encrypt(ctx, body, &li.entries[i], paths); err != nil {
					return err
				}
			}
			if rw.p.drop[r] {
				return nil
			}
			return copyEntry(lw.tw, hdr, body)
		})
	})
	if err != nil {
		lw.abort()
		return nil, err
	}
	return lw.finish(layerMediaType(gzipMagic, rw.src.mediaType))
}

// copyEntry writes an entry unchanged, except that a GNU sparse file
// becomes a regular file with its holes filled (tar.Writer writes no
// sparse files).
func copyEntry(tw *tar.Writer, hdr *tar.Header, body io.Reader) error {
	if hdr.Typeflag == tar.TypeGNUSparse {
		h := *hdr
		h.Typeflag = tar.TypeReg
		h.PAXRecords = nil
		for k, v := range hdr.PAXRecords {
			if !strings.HasPrefix(k, "GNU.sparse.") {
				if h.PAXRecords == nil {
					h.PAXRecords = map[string]string{}
				}
				h.PAXRecords[k] = v
			}
		}
		hdr = &h
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header: %w", err)
	}
	if _, err := io.Copy(tw, body); err != nil {
		return fmt.Errorf("copying file content: %w", err)
	}
	return nil
}

func (rw *rewriter) setHeader(pp string, hdr *tar.Header) {
	h := *hdr
	rw.mu.Lock()
	defer rw.mu.Unlock()
	e := rw.out[pp]
	if e == nil {
		e = &encrypted{}
		rw.out[pp] = e
	}
	e.hdr = &h
}

// encrypt encrypts the content body of entry e once for each protected
// path, in one pass. The salt is derived from the content's SHA-256 of the
// first pass; the content is hashed again on the way, and a difference
// fails the conversion before any ciphertext is used (reusing a salt for
// other plaintext would break the encryption).
func (rw *rewriter) encrypt(ctx context.Context, body io.Reader, e *entry, paths []string) error {
	files := make([]*encrypted, len(paths))
	pipes := make([]*io.PipeWriter, len(paths))
	g, _ := errgroup.WithContext(ctx)
	for k, pp := range paths {
		pr, pw := io.Pipe()
		pipes[k] = pw
		g.Go(func() error {
			enc, err := rw.encryptOne(pr, e, pp)
			pr.CloseWithError(err)
			files[k] = enc
			return err
		})
	}
	h := sha256.New()
	writers := []io.Writer{h}
	var small bytes.Buffer // the content, kept if it is short enough to be searched for
	if e.size <= maxSearched {
		writers = append(writers, &small)
	}
	for _, pw := range pipes {
		writers = append(writers, pw)
	}
	n, err := io.Copy(io.MultiWriter(writers...), body)
	for _, pw := range pipes {
		pw.CloseWithError(err)
	}
	gerr := g.Wait()
	fail := func(err error) error {
		for _, f := range files {
			if f != nil {
				os.Remove(f.tmp)
			}
		}
		return err
	}
	switch {
	case err != nil:
		return fail(fmt.Errorf("reading protected content: %w", err))
	case gerr != nil:
		return fail(gerr)
	case n != e.size || [32]byte(h.Sum(nil)) != e.sum:
		return fail(fmt.Errorf("protected content changed between the two readings of the layer: did the image change?"))
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if b := searchable(small.Bytes()); b != nil {
		rw.plain = append(rw.plain, plaintext{path: paths[0], data: b})
	}
	clear(small.Bytes())
	for _, f := range files {
		if old := rw.out[f.file.Path]; old != nil {
			f.hdr = old.hdr
		}
		rw.out[f.file.Path] = f
	}
	return nil
}

// encryptOne writes the protected file for path pp from the plaintext r.
func (rw *rewriter) encryptOne(r io.Reader, e *entry, pp string) (*encrypted, error) {
	salt, err := protect.DeriveSalt(rw.cfg.FileKey, pp, rw.cfg.ProtectVersion, e.sum)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(rw.dir, "protected-*")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var size int64
	bw := bufio.NewWriterSize(io.MultiWriter(f, h, sizeWriter{&size}), 256<<10)
	err = protect.EncryptWithSalt(bw, r, rw.cfg.FileKey, pp, rw.cfg.ProtectVersion, salt)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if want := protect.EncryptedSize(e.size, pp); err == nil && size != want {
		err = fmt.Errorf("encrypted %s to %d bytes; expected %d", pp, size, want)
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("encrypting %s: %w", pp, err)
	}
	return &encrypted{
		tmp: f.Name(),
		file: enclave.ProtectedFile{Path: pp, Key: rw.cfg.KeyName, Size: e.size,
			SHA256: enclave.Digest(h.Sum(nil)), Version: rw.cfg.ProtectVersion},
	}, nil
}
