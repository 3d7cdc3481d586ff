package image

import (
	"maps"
	"path"
	"slices"
	"strings"
)

// ref names one entry of one layer: indices into the layer list and into
// the layer's entries. noRef marks "none" (an implicit directory).
type ref struct{ layer, entry int32 }

var noRef = ref{-1, -1}

// node is one path of the merged file system.
type node struct {
	kind kind // kindFile (hard links resolved), kindDir, kindSymlink, kindFIFO or kindDevice
	def  ref  // the entry that made the node; noRef for an implicit directory
	// inode is, for a file, the entry that holds its content: the file
	// itself, or the file a hard link points to.
	inode    ref
	children map[string]*node // directories only
}

// view is the file system an image's layers stack up to, as a container
// runtime applies them: each layer's whiteouts remove paths of the layers
// below, then its entries are applied in tar order (a later entry replaces
// an earlier one; a non-directory replaces a directory with its contents;
// a directory over a directory merges).
type view struct {
	root *node
	idx  []*layerIndex
}

func (v *view) entry(r ref) *entry { return &v.idx[r.layer].entries[r.entry] }

// mergeLayers stacks the indexed layers. Entries whose parent is not a
// directory (a file or a symbolic link of a lower layer) and hard links to
// anything but an existing regular file are refused: runtimes resolve them
// differently, so no measurement could be trusted to match. Each hard-link
// entry's target and inode fields are filled in.
func mergeLayers(idx []*layerIndex) (*view, error) {
	v := &view{root: newDir(noRef), idx: idx}
	for l, li := range idx {
		if err := v.apply(int32(l), li); err != nil {
			return nil, inLayer(l+1, err)
		}
	}
	return v, nil
}

func newDir(def ref) *node { return &node{kind: kindDir, def: def, children: map[string]*node{}} }

// apply stacks one layer on v.
func (v *view) apply(l int32, li *layerIndex) error {
	for i := range li.entries {
		e := &li.entries[i]
		switch e.kind {
		case kindWhiteout:
			parent, err := v.dir(path.Dir(e.path), false)
			if err != nil {
				return &LayerError{Path: e.path, Err: err}
			}
			if parent != nil {
				delete(parent.children, path.Base(e.path))
			}
		case kindOpaque:
			d, err := v.dir(e.path, false)
			if err != nil {
				return &LayerError{Path: e.path, Err: err}
			}
			if d != nil {
				d.children = map[string]*node{}
			}
		}
	}
	for i := range li.entries {
		e := &li.entries[i]
		r := ref{l, int32(i)}
		if e.kind == kindWhiteout || e.kind == kindOpaque || e.kind == kindIgnored {
			continue
		}
		parent, err := v.dir(path.Dir(e.path), true)
		if err != nil {
			return &LayerError{Path: e.path, Err: err}
		}
		base := path.Base(e.path)
		old := parent.children[base]
		switch e.kind {
		case kindDir:
			if old != nil && old.kind == kindDir {
				old.def = r
			} else {
				parent.children[base] = newDir(r)
			}
		case kindFile:
			parent.children[base] = &node{kind: kindFile, def: r, inode: r}
		case kindHardlink:
			t := v.lookup(e.link)
			if t == nil || t.kind != kindFile {
				what := "does not exist"
				if t != nil {
					what = "is " + t.kind.String()
				}
				return &LayerError{Path: e.path, Err: unsafef("hard link to %q, which %s; expected a regular file", e.link, what)}
			}
			e.target, e.inode = t.def, t.inode
			parent.children[base] = &node{kind: kindFile, def: r, inode: t.inode}
		default:
			parent.children[base] = &node{kind: e.kind, def: r}
		}
	}
	return nil
}

// dir returns the directory at p. With create, missing directories are
// made; without, a missing one gives nil. A path element that exists but
// is not a directory is an error wrapping [ErrUnsafe].
func (v *view) dir(p string, create bool) (*node, error) {
	n := v.root
	if p == "/" {
		return n, nil
	}
	for elem := range strings.SplitSeq(p[1:], "/") {
		c := n.children[elem]
		switch {
		case c == nil && !create:
			return nil, nil
		case c == nil:
			c = newDir(noRef)
			n.children[elem] = c
		case c.kind != kindDir:
			return nil, unsafef("parent %q is %s in a lower layer; expected a directory", p, c.kind)
		}
		n = c
	}
	return n, nil
}

// lookup returns the node at the absolute clean path p without following
// symbolic links, or nil.
func (v *view) lookup(p string) *node {
	n := v.root
	if p == "/" {
		return n
	}
	for elem := range strings.SplitSeq(p[1:], "/") {
		if n.kind != kindDir {
			return nil
		}
		if n = n.children[elem]; n == nil {
			return nil
		}
	}
	return n
}

// maxSymlinks bounds the symbolic links one resolution follows, as Linux
// bounds them (ELOOP).
const maxSymlinks = 40

// resolve follows p through the view as the kernel would inside the
// container: symbolic links are followed in every element, absolute
// targets start again at the root, and ".." never leaves the root. It
// returns the path without symbolic links and its node, or "" and nil
// when p does not exist (or loops).
func (v *view) resolve(p string) (string, *node) {
	real, n, _ := v.resolveForms(p)
	return real, n
}

// resolveForms is resolve that also returns every form p takes on the way:
// p itself, then the path after each symbolic link is expanded (absolute
// and clean; the last one is the result). In a lower layer, before a link
// replaced a directory, a file may have lived at any of them.
func (v *view) resolveForms(p string) (string, *node, []string) {
	forms := []string{p}
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur, n := "/", v.root
	for hops := 0; len(rest) > 0; {
		elem := rest[0]
		rest = rest[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			n = v.lookup(cur)
			continue
		}
		if n.kind != kindDir {
			return "", nil, forms
		}
		c := n.children[elem]
		if c == nil {
			return "", nil, forms
		}
		if c.kind == kindSymlink {
			if hops++; hops > maxSymlinks {
				return "", nil, forms
			}
			target := v.entry(c.def).link
			if strings.HasPrefix(target, "/") {
				cur, n = "/", v.root
			}
			rest = append(strings.Split(target, "/"), rest...)
			// cur has no symbolic links, so cleaning lexically resolves
			// ".." as the kernel would.
			if f := path.Clean(cur + "/" + strings.Join(rest, "/")); f != forms[len(forms)-1] {
				forms = append(forms, f)
			}
			continue
		}
		cur, n = path.Join(cur, elem), c
	}
	return cur, n, forms
}

// walk calls fn for every node below the directory n at path p (not for n
// itself), in a deterministic order: names sorted within each directory.
func walk(p string, n *node, fn func(string, *node) error) error {
	for _, name := range slices.Sorted(maps.Keys(n.children)) {
		c := n.children[name]
		cp := path.Join(p, name)
		if err := fn(cp, c); err != nil {
			return err
		}
		if c.kind == kindDir {
			if err := walk(cp, c, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
