package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
)

// found is the state of one of the converter's files while the layers are
// searched from the top.
type found struct {
	path    string
	done    bool   // the topmost layer that concerns the path was seen
	deleted bool   // it removes the path
	data    []byte // the enclave manifest
	sum     enclave.Digest
	size    int64
	err     error
}

// Inspect reads the signed enclave manifest and the launcher of a
// converted image from its topmost layers that hold them (whiteouts
// respected), checks the manifest's signature and returns the image's
// report. It reads layers from the top only until both files are found.
// An image without them gives an error wrapping [ErrNotConverted].
func Inspect(ctx context.Context, src *Source, opts ...Option) (*Report, *enclave.Signed, error) {
	lim := Limits{}.withDefaults()
	var b budget
	man := &found{path: EnclaveManifestPath}
	lau := &found{path: LauncherPath}
	for l := len(src.layers) - 1; l >= 0 && !(man.done && lau.done); l-- {
		layerMan, layerLau := &found{path: man.path}, &found{path: lau.path}
		err := readLayer(ctx, src.layers[l], src.mediaType, &lim, nil, func(r io.Reader) error {
			return walkTar(r, &lim, &b, func(_ int, _ *tar.Header, e *entry, body io.Reader) error {
				for _, f := range []*found{layerMan, layerLau} {
					if !f.done || e.kind != kindWhiteout && e.kind != kindOpaque {
						f.see(e, body)
					}
				}
				return nil
			})
		})
		if err != nil {
			return nil, nil, inLayer(l+1, err)
		}
		for _, pair := range [][2]*found{{man, layerMan}, {lau, layerLau}} {
			if !pair[0].done && pair[1].done {
				*pair[0] = *pair[1]
			}
		}
	}
	for _, f := range []*found{man, lau} {
		switch {
		case !f.done || f.deleted:
			return nil, nil, fmt.Errorf("image %s: %w: it has no %s", src.name, ErrNotConverted, f.path)
		case f.err != nil:
			return nil, nil, fmt.Errorf("image %s: %s: %w", src.name, f.path, f.err)
		}
	}
	signed, err := enclave.Parse(man.data)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %s: %w", src.name, EnclaveManifestPath, err)
	}
	// A launcher other than the recorded one refuses to start in simulation, so the
	// measurement it would be part of is never quoted.
	if l := signed.Manifest.Launcher; l != nil && (l.SHA256 != lau.sum || l.Size != lau.size) {
		return nil, nil, fmt.Errorf("image %s: %w: %s is not the launcher the enclave manifest records: expected %d bytes with SHA-256 %s, found %d bytes with SHA-256 %s",
			src.name, ErrMismatch, LauncherPath, l.Size, l.SHA256, lau.size, lau.sum)
	}
	r := newReport(signed, lau.sum)
	r.Image = src.name
	if src.digest.Hex != "" {
		r.Digest = src.digest.String()
	}
	return &r, signed, nil
}

// see updates f with one entry of a layer: an entry at f's path, or a
// whiteout or non-directory that removes it.
func (f *found) see(e *entry, body io.Reader) {
	dir := f.path[:strings.LastIndexByte(f.path, '/')]
	switch {
	case e.kind == kindWhiteout && (e.path == f.path || e.path == dir),
		e.kind == kindOpaque && (e.path == dir || e.path == "/"),
		e.path == dir && e.kind != kindDir:
		*f = found{path: f.path, done: true, deleted: true}
	case e.path == f.path && e.kind == kindFile:
		*f = found{path: f.path, done: true}
		if f.path == EnclaveManifestPath {
			b, err := io.ReadAll(io.LimitReader(body, enclave.MaxSize+1))
			f.data, f.err = b, err
		} else {
			f.sum, f.size, f.err = enclave.HashReader(body)
		}
	case e.path == f.path:
		*f = found{path: f.path, done: true, err: fmt.Errorf("expected a regular file, found %s", e.kind)}
	}
}

// MismatchError is the error of [Verify]: every file of the image that
// differs from the enclave manifest. It wraps [ErrMismatch].
type MismatchError struct {
	Mismatches []enclave.Mismatch
}

// Error lists the number of differences and the first 20 of them.
func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d differences:", ErrMismatch, len(e.Mismatches))
	for i, m := range e.Mismatches {
		if i == 20 {
			fmt.Fprintf(&b, "\n  and %d more", len(e.Mismatches)-20)
			break
		}
		b.WriteString("\n  " + m.String())
	}
	return b.String()
}

// Unwrap returns [ErrMismatch].
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Verify inspects a converted image (see [Inspect]), then reads every
// layer, stacks them as a runtime does, and re-hashes every trusted and
// protected file the enclave manifest lists (following symbolic links, as
// the launcher does; a protected file's encrypted copy, and the symbolic
// link at its path). It also reports regular files that the manifest
// neither lists nor excludes, and device nodes. Any difference gives a
// [*MismatchError]; the report is returned either way.
func Verify(ctx context.Context, src *Source, opts ...Option) (*Report, error) {
	o := newOptions(opts)
	r, signed, err := Inspect(ctx, src, opts...)
	if err != nil {
		return nil, err
	}
	lim := Limits{}.withDefaults()
	t := &tracker{phase: "reading", layers: len(src.layers), total: src.compressedSize()}
	stop := t.report(o.progress)
	idx, err := indexLayers(ctx, src, &lim, 0, t)
	stop()
	if err != nil {
		return r, err
	}
	v, err := mergeLayers(idx)
	if err != nil {
		return r, err
	}
	m := signed.Manifest
	var bad []enclave.Mismatch
	listed := map[string]bool{}
	check := func(p string, size int64, sum enclave.Digest, note string) {
		listed[p] = true
		real, n := v.resolve(p)
		mm := enclave.Mismatch{Path: p, Expected: "a regular file"}
		switch {
		case n == nil:
			mm.Found = "missing"
		case n.kind != kindFile:
			mm.Found = n.kind.String()
		default:
			listed[real] = true
			e := v.entry(n.inode)
			switch {
			case e.size != size:
				mm.Expected, mm.Found = fmt.Sprintf("size %d%s", size, note), fmt.Sprintf("size %d", e.size)
			case e.sum != sum:
				mm.Expected, mm.Found = "sha256 "+sum.String(), "sha256 "+enclave.Digest(e.sum).String()
			default:
				return
			}
		}
		bad = append(bad, mm)
	}
	for _, f := range m.Files {
		check(f.Path, f.Size, f.SHA256, "")
	}
	for _, f := range m.ProtectedFiles {
		listed[f.Path] = true
		want := m.PlaintextPath(f.Path)
		if n := v.lookup(f.Path); n == nil || n.kind != kindSymlink || v.entry(n.def).link != want {
			found := "missing"
			switch {
			case n == nil:
			case n.kind == kindSymlink:
				found = fmt.Sprintf("a symbolic link to %q", v.entry(n.def).link)
			default:
				found = n.kind.String()
			}
			bad = append(bad, enclave.Mismatch{Path: f.Path, Expected: "a symbolic link to " + want, Found: found})
		}
		check(m.EncryptedPath(f.Path), protect.EncryptedSize(f.Size, f.Path), f.SHA256, " (encrypted)")
	}
	_ = walk("/", v.root, func(p string, n *node) error {
		switch {
		case listed[p] || isReserved(p) || m.Excluded(p):
		case n.kind == kindFile:
			bad = append(bad, enclave.Mismatch{Path: p, Expected: "no file (not in the enclave manifest)", Found: "an unmeasured file"})
		case n.kind == kindDevice:
			bad = append(bad, enclave.Mismatch{Path: p, Expected: "no device node", Found: "a device node"})
		}
		return nil
	})
	if len(bad) > 0 {
		return r, &MismatchError{Mismatches: bad}
	}
	return r, nil
}
