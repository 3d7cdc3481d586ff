package image

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// plan is what the conversion does to the layers, decided from the merged
// view before any layer is rewritten.
type plan struct {
	// protected maps each protected path (no symbolic links in it) to its
	// node in the final view.
	protected map[string]*node
	// drop holds the entries removed from their layers: every entry at a
	// protected path, and every entry holding a protected file's content.
	drop map[ref]bool
	// sources maps each entry holding a protected file's content to the
	// protected paths encrypted from it (several, for hard links).
	sources map[ref][]string
	// defs maps the entry that made each protected path to that path; its
	// header gives the encrypted file's owner and mode.
	defs map[ref]string
	// rewrite marks the layers that lose entries.
	rewrite []bool
	// oldFiles holds the paths at which a requested file's plaintext may
	// have lived in a lower layer: the request and each of its symbolic-link
	// expansions. No entry at one of them is visible in the final view.
	oldFiles map[string]bool
	// dirs holds the protected directories, resolved, as requested and each
	// expansion between: every file entry below one, in any layer, goes.
	dirs map[string]bool
	// links are the symbolic links found in protected directories; each
	// must point to protected files (checked once every request is in).
	links []protectedLink
}

// protectedLink is a symbolic link inside a protected directory.
type protectedLink struct{ path, dir string }

// reservedDir is where the converter puts its own files.
const reservedDir = enclave.ReservedDir

// planProtection resolves the requested protected paths in v and decides
// which entries leave which layers: every entry at a protected path or
// holding a protected file's content, every file entry at a requested
// file's path as requested or through any expansion of its symbolic links,
// and every file entry below a protected directory (resolved or as
// requested), in every layer, whether or not it is still visible. It fails
// closed, with an error wrapping [ErrPlaintext], whenever a protected file's
// plaintext would stay in the image: a hard link to it at an unprotected
// path, a symbolic link in a protected directory to an unprotected file, or
// an unprotected file anywhere in any layer with the same content.
func planProtection(v *view, requested []string, excluded func(string) bool) (*plan, error) {
	p := &plan{protected: map[string]*node{}, drop: map[ref]bool{}, sources: map[ref][]string{},
		defs: map[ref]string{}, rewrite: make([]bool, len(v.idx)), oldFiles: map[string]bool{}, dirs: map[string]bool{}}
	for _, req := range requested {
		if err := p.add(v, req, excluded); err != nil {
			return nil, err
		}
	}
	if len(p.protected) == 0 {
		return p, nil
	}
	if err := p.checkLinks(v); err != nil {
		return nil, err
	}
	inodes := map[ref]string{}
	sums := map[[32]byte]string{}
	for pp, n := range p.protected {
		inodes[n.inode] = pp
		p.sources[n.inode] = append(p.sources[n.inode], pp)
		p.defs[n.def] = pp
		if e := v.entry(n.inode); e.size > 0 {
			sums[e.sum] = pp
		}
	}
	for _, paths := range p.sources {
		slices.Sort(paths)
	}
	// Every final path that shares a protected file's content must be protected too.
	var errs []error
	_ = walk("/", v.root, func(fp string, n *node) error {
		if pp, ok := inodes[n.inode]; ok && n.kind == kindFile && p.protected[fp] == nil {
			errs = append(errs, fmt.Errorf("%w: %s is a hard link to protected %s; protect it too (--protect %s) or remove the link",
				ErrPlaintext, fp, pp, fp))
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for l, li := range v.idx {
		for i := range li.entries {
			e := &li.entries[i]
			r := ref{int32(l), int32(i)}
			_, atProtected := p.protected[e.path]
			var holds, old bool // the entry carries a protected file's content, or may carry an old one
			switch e.kind {
			case kindWhiteout, kindOpaque, kindIgnored:
				continue // they carry no content
			case kindFile:
				_, holds = inodes[r]
				old = p.oldFiles[e.path] || p.inDir(e.path)
			case kindHardlink:
				_, holds = inodes[e.inode]
				old = p.oldFiles[e.path] || p.inDir(e.path)
				// A hard link to a removed entry would have no target; if
				// nothing sees it in the final view, it goes too. A visible
				// one fails below.
				if !old && p.drop[e.target] {
					n := v.lookup(e.path)
					old = n == nil || n.def != r
				}
			}
			if atProtected || holds || old {
				p.drop[r] = true
				p.rewrite[l] = true
			}
		}
	}
	for l, li := range v.idx {
		for i := range li.entries {
			e := &li.entries[i]
			if p.drop[ref{int32(l), int32(i)}] {
				continue
			}
			switch {
			case e.kind == kindHardlink && p.drop[e.target]:
				errs = append(errs, &LayerError{Layer: l + 1, Path: e.path, Err: fmt.Errorf(
					"%w: hard link to %s, whose entry is removed because it holds protected content; protect %s too or remove the link",
					ErrPlaintext, e.link, e.path)})
			case e.kind == kindFile && e.size > 0 && sums[e.sum] != "":
				errs = append(errs, &LayerError{Layer: l + 1, Path: e.path, Err: fmt.Errorf(
					"%w: the same content as protected %s; protect this path too or remove it from the image",
					ErrPlaintext, sums[e.sum])})
			}
		}
	}
	return p, errors.Join(errs...)
}

// add resolves one requested path (a file, or a directory whose regular
// files are all protected) through the final view, and records the paths
// at which its older plaintext may lie in lower layers.
func (p *plan) add(v *view, req string, excluded func(string) bool) error {
	if err := checkImagePath(req); err != nil {
		return fmt.Errorf("protect %q: %w", req, err)
	}
	real, n, forms := v.resolveForms(req)
	switch {
	case n == nil:
		return fmt.Errorf("protect %q: not found in the image", req)
	case real == "/":
		return fmt.Errorf("protect %q: resolves to the root directory; expected a file or a directory below it", req)
	case isReserved(real):
		return fmt.Errorf("protect %q: resolves to %s, which the converter writes itself", req, real)
	case n.kind == kindFile:
		for _, f := range forms {
			p.oldFiles[f] = true
		}
		return p.addFile(real, n, excluded)
	case n.kind == kindDir:
		for _, f := range forms {
			p.dirs[f] = true
		}
		before := len(p.protected)
		err := walk(real, n, func(fp string, c *node) error {
			switch c.kind {
			case kindFile:
				return p.addFile(fp, c, excluded)
			case kindSymlink:
				p.links = append(p.links, protectedLink{path: fp, dir: real})
			case kindFIFO, kindDevice:
				return fmt.Errorf("protect %q: %s is %s; a protected directory may hold regular files, directories and symbolic links only (remove it from the image)", req, fp, c.kind)
			}
			return nil
		})
		if err == nil && len(p.protected) == before {
			err = fmt.Errorf("protect %q: the directory %s holds no regular files", req, real)
		}
		return err
	}
	return fmt.Errorf("protect %q: %s is %s; expected a regular file or a directory", req, real, n.kind)
}

// inDir reports whether p lies below a protected directory.
func (p *plan) inDir(fp string) bool {
	if len(p.dirs) == 0 {
		return false
	}
	for d := path.Dir(fp); d != "/"; d = path.Dir(d) {
		if p.dirs[d] {
			return true
		}
	}
	return false
}

// errStop ends a walk early.
var errStop = errors.New("stop")

// checkLinks requires every symbolic link found in a protected directory to
// point to protected files only: a link to a regular file that is
// protected, or to a directory whose regular files all are. A link to
// nothing, or to a pipe, carries no content.
func (p *plan) checkLinks(v *view) error {
	var errs []error
	for _, l := range p.links {
		target, n := v.resolve(l.path)
		switch {
		case n == nil:
		case n.kind == kindFile && p.protected[target] == nil:
			errs = append(errs, fmt.Errorf("%w: %s in protected %s is a symbolic link to %s, which is not protected; protect it too (--protect %s) or remove the link",
				ErrPlaintext, l.path, l.dir, target, target))
		case n.kind == kindDir:
			var open string
			_ = walk(target, n, func(fp string, c *node) error {
				if c.kind == kindFile && p.protected[fp] == nil {
					open = fp
					return errStop
				}
				return nil
			})
			if open != "" {
				errs = append(errs, fmt.Errorf("%w: %s in protected %s is a symbolic link to the directory %s, whose file %s is not protected; protect it too (--protect %s) or remove the link",
					ErrPlaintext, l.path, l.dir, target, open, target))
			}
		}
	}
	return errors.Join(errs...)
}

func (p *plan) addFile(fp string, n *node, excluded func(string) bool) error {
	if excluded(fp) {
		return fmt.Errorf("protect %s: the path matches an exclude pattern; a protected file is always checked", fp)
	}
	p.protected[fp] = n
	return nil
}

// protectedDirs returns every directory above the protected files, with
// the mode and owner of the entry that made it (0755 and root for a
// directory no layer has an entry for, as runtimes create it), sorted.
func protectedDirs(v *view, p *plan) ([]enclave.Directory, error) {
	seen := map[string]bool{}
	var dirs []enclave.Directory
	for pp := range p.protected {
		for d := path.Dir(pp); d != "/" && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			rec := enclave.Directory{Path: d, Mode: 0o755}
			if n := v.lookup(d); n != nil && n.def != noRef {
				e := v.entry(n.def)
				var err error
				if rec.Mode, rec.UID, rec.GID, err = attrs(e.mode, e.uid, e.gid); err != nil {
					return nil, &LayerError{Layer: int(n.def.layer) + 1, Path: d, Err: err}
				}
			}
			dirs = append(dirs, rec)
		}
	}
	slices.SortFunc(dirs, func(a, b enclave.Directory) int { return strings.Compare(a.Path, b.Path) })
	return dirs, nil
}

// attrs checks the mode and owner of a tar header for the enclave manifest:
// permission bits (setuid, setgid and sticky kept as they are) and IDs that
// fit a uid_t other than -1.
func attrs(mode int64, uid, gid int) (enclave.Mode, uint32, uint32, error) {
	switch {
	case uid < 0 || gid < 0 || uid >= 1<<32-1 || gid >= 1<<32-1:
		return 0, 0, 0, fmt.Errorf("%w: owner %d:%d; expected IDs from 0 to 4294967294", ErrUnsafe, uid, gid)
	case mode < 0:
		return 0, 0, 0, fmt.Errorf("%w: mode %d", ErrUnsafe, mode)
	}
	return enclave.Mode(mode & 0o7777), uint32(uid), uint32(gid), nil
}

// trustedFiles lists the regular files of the final view that are neither
// protected nor excluded, with their digests and sizes. It refuses device
// nodes that are not excluded, and an image that already has /cloister.
func trustedFiles(v *view, p *plan, excluded func(string) bool) ([]enclave.File, error) {
	if n := v.lookup(reservedDir); n != nil {
		return nil, fmt.Errorf("%w: the image already has %s (%s): is it converted already?", ErrUnsafe, reservedDir, n.kind)
	}
	var files []enclave.File
	err := walk("/", v.root, func(fp string, n *node) error {
		switch {
		case excluded(fp):
		case n.kind == kindDevice:
			return &LayerError{Layer: int(n.def.layer) + 1, Path: fp,
				Err: fmt.Errorf("%w: a device node; confidential images hold none (remove it, or --exclude it)", ErrUnsafe)}
		case n.kind == kindFile && p.protected[fp] == nil:
			e := v.entry(n.inode)
			files = append(files, enclave.File{Path: fp, SHA256: e.sum, Size: e.size})
		}
		return nil
	})
	return files, err
}

// checkImagePath returns why p is not an absolute clean path below "/" of
// at most 4096 bytes, or nil.
func checkImagePath(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return errors.New("expected an absolute path")
	case p == "/":
		return errors.New("expected a path below the root directory")
	case len(p) > maxPath || strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("expected at most %d bytes without NUL", maxPath)
	case path.Clean(p) != p:
		return fmt.Errorf("expected a clean path (%s)", path.Clean(p))
	}
	return nil
}

// isReserved reports whether p is /cloister or below it.
func isReserved(p string) bool {
	return p == reservedDir || strings.HasPrefix(p, reservedDir+"/")
}
