package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/enclave"
)

// Reasons a directory is left unmeasured ([Unmeasured.Reason]).
const (
	// ReasonVolume: a VOLUME of the image configuration.
	ReasonVolume = "VOLUME"
	// ReasonWritable: a path of [Config.Writable] (--writable).
	ReasonWritable = "--writable"
)

// maxVolumes bounds the encrypted volumes, the writable paths and the
// image's VOLUME paths, each.
const maxVolumes = 256

// Unmeasured is a directory the application writes whose content the
// enclave manifest does not measure (a directory-prefix exclude): a VOLUME
// of the image configuration or a [Config.Writable] path. Its content stays
// in the image (a runtime copies it into a new named volume) but none of it
// is a trusted file.
type Unmeasured struct {
	// Path is the directory, its symbolic links resolved in the image.
	Path string `json:"path"`
	// Reason is [ReasonVolume] or [ReasonWritable].
	Reason string `json:"reason"`
	// Files counts the regular files the image holds below Path, which
	// stay in the image unmeasured.
	Files int `json:"files"`
}

// volumePlan is what the conversion does with the directories the
// application writes, decided from the merged view.
type volumePlan struct {
	// unmeasured are the VOLUME and writable directories not inside an
	// encrypted volume, sorted by path.
	unmeasured []Unmeasured
	// volumes are the encrypted volumes, sorted by path.
	volumes []enclave.Volume
	// seedFiles are the trusted files of the seeds, at their seed paths.
	seedFiles []enclave.File
	// seed is the seeds' part of the added layer: directories, symbolic
	// links, hard links and regular files below /cloister/seed, in order.
	// A regular file's data comes from the entry seedFrom names.
	seed     []addedFile
	seedFrom []ref // for each element of seed: the entry holding its content, or noRef
}

// inside reports whether p is dir or lies below it.
func inside(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// resolvePath returns p with the symbolic links of its longest existing
// leading part resolved as the kernel would inside the container, so a
// path that does not exist yet resolves through the links above it.
func (v *view) resolvePath(p string) string {
	if real, n := v.resolve(p); n != nil {
		return real
	}
	rest := path.Base(p)
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if real, n := v.resolve(dir); n != nil && n.kind == kindDir {
			return path.Join(real, rest)
		}
		rest = path.Join(path.Base(dir), rest)
	}
	return p
}

// planVolumes resolves the encrypted volumes, the writable paths and the
// image's VOLUME paths (declared) in v. A VOLUME or writable path at or
// below an encrypted volume is part of that volume. Each encrypted volume
// must be a directory or absent; one that holds content becomes seeded.
func planVolumes(v *view, declared map[string]struct{}, cfg *Config) (*volumePlan, error) {
	vp := &volumePlan{}
	var errs []error
	if len(declared) > maxVolumes {
		return nil, fmt.Errorf("the image configuration declares %d VOLUME paths; expected at most %d", len(declared), maxVolumes)
	}
	var encrypted []string
	for _, req := range cfg.EncryptedVolumes {
		real := v.resolvePath(req)
		if err := checkVolumeTarget(v, real); err != nil {
			errs = append(errs, fmt.Errorf("encrypted volume %s: %w", req, err))
		} else if !slices.Contains(encrypted, real) {
			encrypted = append(encrypted, real)
		}
	}
	slices.Sort(encrypted)
	for i := 1; i < len(encrypted); i++ {
		if inside(encrypted[i], encrypted[i-1]) {
			errs = append(errs, fmt.Errorf("encrypted volumes %s and %s: the second lies inside the first; expected separate directories", encrypted[i-1], encrypted[i]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range encrypted {
		if err := vp.addVolume(v, p, cfg.VolumeKeyName); err != nil {
			return nil, err
		}
	}

	type request struct{ path, reason string }
	var reqs []request
	for _, p := range slices.Sorted(maps.Keys(declared)) {
		reqs = append(reqs, request{p, ReasonVolume})
	}
	for _, p := range cfg.Writable {
		reqs = append(reqs, request{p, ReasonWritable})
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		p := r.path
		if r.reason == ReasonVolume {
			p = path.Clean("/" + p) // runtimes take VOLUME paths as absolute
			if err := checkImagePath(p); err != nil {
				errs = append(errs, fmt.Errorf("image configuration VOLUME %q: %w", r.path, err))
				continue
			}
		}
		real := v.resolvePath(p)
		if slices.ContainsFunc(encrypted, func(e string) bool { return inside(real, e) }) || seen[real] {
			continue
		}
		if err := checkVolumeTarget(v, real); err != nil {
			what := "image configuration VOLUME"
			if r.reason == ReasonWritable {
				what = "writable path"
			}
			errs = append(errs, fmt.Errorf("%s %s: %w", what, r.path, err))
			continue
		}
		seen[real] = true
		vp.unmeasured = append(vp.unmeasured, Unmeasured{Path: real, Reason: r.reason})
	}
	slices.SortFunc(vp.unmeasured, func(a, b Unmeasured) int { return strings.Compare(a.Path, b.Path) })
	vp.countUnmeasured(v)
	return vp, errors.Join(errs...)
}

// countUnmeasured counts the regular files below each unmeasured path, in
// one walk of the view however many paths there are and however they nest.
func (vp *volumePlan) countUnmeasured(v *view) {
	if len(vp.unmeasured) == 0 {
		return
	}
	at := map[string]int{}
	for i, u := range vp.unmeasured {
		at[u.Path] = i
	}
	_ = walk("/", v.root, func(fp string, n *node) error {
		if n.kind != kindFile {
			return nil
		}
		for d := path.Dir(fp); d != "/"; d = path.Dir(d) {
			if i, ok := at[d]; ok {
				vp.unmeasured[i].Files++
			}
		}
		return nil
	})
}

// checkVolumeTarget returns why the resolved path p cannot be a volume:
// it is the converter's, or something other than a directory.
func checkVolumeTarget(v *view, p string) error {
	if p == "/" || isReserved(p) {
		return fmt.Errorf("resolves to %s; expected a directory outside %s and below the root", p, reservedDir)
	}
	if n := v.lookup(p); n != nil && n.kind != kindDir {
		return fmt.Errorf("%s is %s in the image; expected a directory or nothing", p, n.kind)
	}
	return nil
}

// excludes returns the directory-prefix patterns of the unmeasured paths.
func (vp *volumePlan) excludes() []string {
	var out []string
	for _, u := range vp.unmeasured {
		out = append(out, u.Path+"/")
	}
	return out
}

// inVolume reports whether p lies inside an encrypted volume.
func (vp *volumePlan) inVolume(p string) bool {
	return slices.ContainsFunc(vp.volumes, func(vol enclave.Volume) bool { return inside(p, vol.Path) })
}

// addVolume records the encrypted volume at the resolved path p with the
// directory's mode and owner (0755 and root when the image has none). When
// the image holds content below p, the volume is seeded: the content is
// planned at [enclave.SeedPath] of p, regular files as trusted files (a
// hard link within the seed stays one), directories and symbolic links
// with their modes, owners and times. Device nodes and named pipes are
// refused.
func (vp *volumePlan) addVolume(v *view, p, key string) error {
	vol := enclave.Volume{Path: p, Key: key, Mode: 0o755}
	n := v.lookup(p)
	if n != nil && n.def != noRef {
		e := v.entry(n.def)
		var err error
		if vol.Mode, vol.UID, vol.GID, err = attrs(e.mode, e.uid, e.gid); err != nil {
			return &LayerError{Layer: int(n.def.layer) + 1, Path: p, Err: err}
		}
	}
	if n == nil || len(n.children) == 0 {
		vp.volumes = append(vp.volumes, vol)
		return nil
	}
	vol.Seed = true
	root := enclave.SeedPath(p)
	// The directories from /cloister/seed down to the seed's root.
	var parents []string
	for d := path.Dir(root); d != reservedDir; d = path.Dir(d) {
		parents = append(parents, d)
	}
	for _, d := range slices.Backward(parents) {
		vp.addSeed(tar.Header{Typeflag: tar.TypeDir, Name: tarName(d) + "/", Mode: 0o755}, noRef)
	}
	hdr := v.dirHeader(p)
	hdr.Name = tarName(root) + "/"
	vp.addSeed(hdr, noRef)
	first := map[ref]string{} // content entry → the seed path written with it
	err := walk(p, n, func(fp string, c *node) error {
		sp := root + fp[len(p):]
		var e *entry
		if c.def != noRef {
			e = v.entry(c.def)
		}
		switch c.kind {
		case kindDir:
			h := v.dirHeader(fp)
			h.Name = tarName(sp) + "/"
			vp.addSeed(h, noRef)
		case kindSymlink:
			h := headerOf(e)
			h.Typeflag, h.Name, h.Linkname = tar.TypeSymlink, tarName(sp), e.link
			vp.addSeed(h, noRef)
		case kindFile:
			content := v.entry(c.inode)
			h := headerOf(content)
			h.Name = tarName(sp)
			if f, ok := first[c.inode]; ok {
				h.Typeflag, h.Linkname = tar.TypeLink, tarName(f)
				vp.addSeed(h, noRef)
			} else {
				first[c.inode] = sp
				h.Typeflag, h.Size = tar.TypeReg, content.size
				vp.addSeed(h, c.inode)
				sum := enclave.Digest(content.sum)
				vp.seed[len(vp.seed)-1].sum = &sum
			}
			vp.seedFiles = append(vp.seedFiles, enclave.File{Path: sp, SHA256: content.sum, Size: content.size})
		default:
			return &LayerError{Layer: int(c.def.layer) + 1, Path: fp, Err: fmt.Errorf(
				"encrypted volume %s: %s is %s; a volume seeded from the image may hold regular files, directories and symbolic links only (remove it from the image)",
				p, fp, c.kind)}
		}
		return nil
	})
	if err != nil {
		return err
	}
	vp.volumes = append(vp.volumes, vol)
	return nil
}

func (vp *volumePlan) addSeed(h tar.Header, from ref) {
	vp.seed = append(vp.seed, addedFile{hdr: h})
	vp.seedFrom = append(vp.seedFrom, from)
}

// tarName returns the tar entry name of the absolute path p.
func tarName(p string) string { return strings.TrimPrefix(p, "/") }

// headerOf returns a tar header with the mode, owner and time of e.
func headerOf(e *entry) tar.Header {
	return tar.Header{Mode: e.mode & 0o7777, Uid: e.uid, Gid: e.gid, Uname: e.uname, Gname: e.gname, ModTime: time.Unix(e.mtime, 0)}
}

// dirHeader returns the tar header of the directory p as the image has it
// (mode, owner, names and time of the entry that made it), or 0755 and
// root with no time (the layer's time) when no layer has an entry for it.
func (v *view) dirHeader(p string) tar.Header {
	h := tar.Header{Mode: 0o755}
	if n := v.lookup(p); n != nil && n.kind == kindDir && n.def != noRef {
		h = headerOf(v.entry(n.def))
	}
	h.Typeflag, h.Name = tar.TypeDir, tarName(p)+"/"
	return h
}

// checkProtectConflicts refuses a protected path that is, contains or lies
// inside an encrypted volume, a VOLUME or a writable path (all resolved
// through the image's symbolic links): a protected file's plaintext lives
// only in memory, so it is read-only and changes to it are lost.
func checkProtectConflicts(v *view, protect []string, vp *volumePlan) error {
	type target struct{ path, what string }
	var targets []target
	for _, vol := range vp.volumes {
		targets = append(targets, target{vol.Path, "the encrypted volume"})
	}
	for _, u := range vp.unmeasured {
		what := "the image's VOLUME"
		if u.Reason == ReasonWritable {
			what = "the writable path (--writable)"
		}
		targets = append(targets, target{u.Path, what})
	}
	var errs []error
	for _, req := range protect {
		if checkImagePath(req) != nil {
			continue // planProtection says why
		}
		real := v.resolvePath(req)
		for _, t := range targets {
			var rel string
			switch {
			case real == t.path:
				rel = "is"
			case inside(real, t.path):
				rel = "lies inside"
			case inside(t.path, real):
				rel = "contains"
			default:
				continue
			}
			at := real
			if real != req {
				at = fmt.Sprintf("%s (%s)", req, real)
			}
			errs = append(errs, fmt.Errorf("protect %s: %s %s %s, which the app writes; protected content is read-only (its plaintext lives only in memory and changes are lost): for data the app writes use --encrypted-volume PATH instead of --protect",
				req, at, rel, t.what+" "+t.path))
			break
		}
	}
	return errors.Join(errs...)
}
