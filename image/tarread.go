package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// kind is what a layer entry is, after the whiteout conventions are applied.
type kind uint8

const (
	kindFile     kind = iota + 1 // a regular file (GNU sparse files included)
	kindDir                      // a directory
	kindSymlink                  // a symbolic link
	kindHardlink                 // a hard link to another file
	kindFIFO                     // a named pipe
	kindDevice                   // a character or block device
	kindWhiteout                 // ".wh.NAME": deletes path from lower layers
	kindOpaque                   // ".wh..wh..opq": empties directory path in lower layers
	kindIgnored                  // the root directory entry, or AUFS metadata (".wh..wh.*")
)

func (k kind) String() string {
	switch k {
	case kindFile:
		return "a regular file"
	case kindDir:
		return "a directory"
	case kindSymlink:
		return "a symbolic link"
	case kindHardlink:
		return "a hard link"
	case kindFIFO:
		return "a named pipe"
	case kindDevice:
		return "a device node"
	case kindWhiteout, kindOpaque:
		return "a whiteout"
	}
	return "metadata"
}

// Whiteout conventions of the OCI image layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// entry is one validated tar entry of a layer.
type entry struct {
	// path is the absolute, clean path the entry concerns: for a whiteout
	// the deleted path, for an opaque whiteout the directory.
	path string
	// link is a hard link's target (an absolute, clean path) or a symbolic
	// link's target as written.
	link string
	size int64
	sum  [32]byte // SHA-256 of a regular file's content, set by the indexer
	kind kind
	// mode, uid, gid, uname, gname and mtime (Unix seconds) are the
	// header's: the enclave manifest records them for the directories above
	// protected files and for encrypted volumes, and the added layer repeats
	// them for the directories it writes and the seeds it moves.
	mode         int64
	uid, gid     int
	uname, gname string
	mtime        int64
	// For a hard link, set when the layers are merged: the entry that made
	// the target path, and the entry that holds the content.
	target, inode ref
}

// visitor is called by walkTar for each entry in order: i counts entries
// from 0, hdr is the raw header, e the validated entry, and body yields a
// regular file's content (nothing for other kinds). A visitor that does not
// read body leaves walkTar to skip it.
type visitor func(i int, hdr *tar.Header, e *entry, body io.Reader) error

// walkTar reads the uncompressed layer tar r and calls visit for each entry.
// Every entry is checked before visit sees it (see checkHeader); the first
// problem ends the walk with an error wrapping [ErrUnsafe] or [ErrLimit]
// that names the entry. The sizes of the layer's files, sparse files
// counted at their full size, are bounded by lim.MaxLayerSize. b counts
// entries, names and file sizes across calls (the image-wide limits); it
// may be nil when the layer was counted before.
func walkTar(r io.Reader, lim *Limits, b *budget, visit visitor) error {
	tr := tar.NewReader(r)
	var layerBytes int64
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readError(fmt.Sprintf("reading tar entry %d", i+1), err)
		}
		if b != nil && b.entries.add(1) > int64(lim.MaxEntries) {
			return limitf("more than %d entries in the image", lim.MaxEntries)
		}
		e, err := checkHeader(hdr, lim)
		if err != nil {
			return &LayerError{Path: hdr.Name, Err: err}
		}
		if e.kind == kindFile {
			// hdr.Size is what is read and hashed: for a sparse file its
			// full size, however few bytes the tar stream holds.
			if layerBytes += e.size; layerBytes > lim.MaxLayerSize {
				return &LayerError{Path: e.path, Err: limitf("the layer's files add up to more than %d bytes (sparse files at their full size)", lim.MaxLayerSize)}
			}
			if b != nil && b.bytes.add(e.size) > lim.MaxImageSize {
				return &LayerError{Path: e.path, Err: limitf("the image's files add up to more than %d bytes (sparse files at their full size)", lim.MaxImageSize)}
			}
		}
		if b != nil && b.names.add(int64(len(e.path)+len(e.link))) > lim.MaxNameBytes {
			return &LayerError{Path: e.path, Err: limitf("the image's paths and link targets add up to more than %d bytes", lim.MaxNameBytes)}
		}
		var body io.Reader = eofReader{}
		if e.kind == kindFile {
			body = tr
		}
		if err := visit(i, hdr, &e, body); err != nil {
			if _, ok := errors.AsType[*LayerError](err); ok {
				return err
			}
			return &LayerError{Path: e.path, Err: err}
		}
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// checkHeader validates one tar header and turns it into an entry. It
// refuses names that are absolute, not valid UTF-8, longer than 4096 bytes
// or hold a ".." element (runtimes disagree on whether to clean them before
// or after following symbolic links), data on entries that have none,
// oversized files, and unknown entry types.
func checkHeader(hdr *tar.Header, lim *Limits) (entry, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return entry{}, err
	}
	e := entry{path: name, size: hdr.Size, mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid,
		uname: hdr.Uname, gname: hdr.Gname, mtime: hdr.ModTime.Unix()}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // the tar reader turns legacy TypeRegA into TypeReg
		e.kind = kindFile
	case tar.TypeDir:
		e.kind = kindDir
	case tar.TypeSymlink:
		e.kind = kindSymlink
	case tar.TypeLink:
		e.kind = kindHardlink
	case tar.TypeFifo:
		e.kind = kindFIFO
	case tar.TypeChar, tar.TypeBlock:
		e.kind = kindDevice
	default:
		return entry{}, unsafef("unsupported tar entry type %q", hdr.Typeflag)
	}
	if e.kind == kindFile {
		if hdr.Size < 0 || hdr.Size > lim.MaxFileSize {
			return entry{}, limitf("file size %d; expected at most %d bytes", hdr.Size, lim.MaxFileSize)
		}
	} else if hdr.Size != 0 {
		return entry{}, unsafef("%s with %d bytes of data; expected none", e.kind, hdr.Size)
	}

	base := path.Base(name)
	switch {
	case name == "/":
		if e.kind != kindDir {
			return entry{}, unsafef("root entry is %s; expected a directory", e.kind)
		}
		e.kind = kindIgnored
		return e, nil
	case base == whiteoutOpaque:
		e.kind, e.path = kindOpaque, path.Dir(name)
	case strings.HasPrefix(base, whiteoutMeta):
		e.kind = kindIgnored // AUFS bookkeeping; runtimes skip it
	case strings.HasPrefix(base, whiteoutPrefix):
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return entry{}, unsafef("whiteout %q names no file", base)
		}
		e.kind, e.path = kindWhiteout, path.Join(path.Dir(name), target)
	}
	if (e.kind == kindWhiteout || e.kind == kindOpaque) && hdr.Size != 0 {
		return entry{}, unsafef("whiteout with %d bytes of data; expected none", hdr.Size)
	}

	switch e.kind {
	case kindHardlink:
		if e.link, err = cleanName(hdr.Linkname); err != nil {
			return entry{}, fmt.Errorf("hard link target: %w", err)
		}
		if e.link == "/" || e.link == e.path {
			return entry{}, unsafef("hard link to %q; expected another file", e.link)
		}
	case kindSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxPath || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return entry{}, unsafef("symbolic link target of %d bytes; expected 1..%d bytes without NUL", len(hdr.Linkname), maxPath)
		}
		e.link = hdr.Linkname
	}
	return e, nil
}

// cleanName turns a tar entry name into an absolute, clean path inside the
// image ("./etc/passwd" and "etc/passwd" become "/etc/passwd", "./" becomes
// "/"). It refuses absolute names, names with a ".." element, names that are
// not valid UTF-8 (the enclave manifest is JSON), names longer than 4096
// bytes and names with an element longer than 255 bytes.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", unsafef("empty name")
	case len(name) > maxPath:
		return "", limitf("name of %d bytes; expected at most %d", len(name), maxPath)
	case !utf8.ValidString(name):
		return "", unsafef("name is not valid UTF-8")
	case strings.IndexByte(name, 0) >= 0:
		return "", unsafef("name contains a NUL byte")
	case name[0] == '/':
		return "", unsafef("absolute name; expected a path relative to the image root")
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch {
		case elem == "..":
			return "", unsafef("name has a \"..\" element")
		case len(elem) > maxName:
			return "", limitf("name has an element of %d bytes; expected at most %d (no file system can create it)", len(elem), maxName)
		}
	}
	return path.Clean("/" + name), nil
}
