package atomicfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrSymlink is wrapped by the errors of [OpenDir], [OpenDirIn] and [CreateIn] when a symbolic
// link stands where a directory or the file to replace was expected. Its text completes a path:
// "/srv/webfiles is a symbolic link; refusing to write through it".
var ErrSymlink = errors.New("is a symbolic link")

// OpenDir opens the directory at dir, an absolute clean path, as an [os.Root], one component
// at a time from "/" and without following a symbolic link in any of them (see [OpenDirIn]).
// Files written through the returned root land in that very directory, whatever links were
// planted on the way: this is for writing where someone else controls the file system (the
// launcher writes its delivered files into an image the host provides). The caller closes the
// root.
func OpenDir(dir string, mkdir os.FileMode) (*os.Root, error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return nil, fmt.Errorf("directory %q: expected an absolute clean path", dir)
	}
	root, err := os.OpenRoot("/")
	if err != nil {
		return nil, err
	}
	if dir == "/" {
		return root, nil
	}
	defer root.Close()
	return OpenDirIn(root, dir[1:], mkdir)
}

// OpenDirIn opens the directory rel below parent, a relative clean path, one component at a
// time. A component that is a symbolic link is refused with an error wrapping [ErrSymlink]; so
// is one that is replaced while it is being opened. With mkdir not 0, missing directories are
// created with permissions mkdir (less the umask), owned by the caller; with mkdir 0 a missing
// directory is an error wrapping [fs.ErrNotExist]. Errors name the absolute path
// (parent.Name() joined with the components). The caller closes the returned root; parent stays
// open.
func OpenDirIn(parent *os.Root, rel string, mkdir os.FileMode) (*os.Root, error) {
	if !filepath.IsLocal(rel) || filepath.Clean(rel) != rel {
		return nil, fmt.Errorf("directory %q below %s: expected a relative clean path inside it", rel, parent.Name())
	}
	if rel == "." {
		return parent.OpenRoot(".")
	}
	r := parent
	for name := range strings.SplitSeq(rel, "/") {
		next, err := openComponent(r, name, mkdir)
		if r != parent {
			r.Close()
		}
		if err != nil {
			return nil, err
		}
		r = next
	}
	return r, nil
}

// openComponent opens the directory name, one path component, in r.
func openComponent(r *os.Root, name string, mkdir os.FileMode) (*os.Root, error) {
	p := filepath.Join(r.Name(), name)
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && mkdir != 0 {
		if err = r.Mkdir(name, mkdir); err == nil || errors.Is(err, fs.ErrExist) {
			fi, err = r.Lstat(name)
		}
	}
	switch {
	case err != nil:
		return nil, renamePathError(err, p)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s %w; refusing to write through it", p, ErrSymlink)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s: expected a directory, found a %s", p, Kind(fi.Mode()))
	}
	// Between the Lstat and the open, the directory may have been swapped for a link: OpenRoot
	// would follow it (inside r). Opening the same directory that Lstat saw rules that out.
	sub, err := r.OpenRoot(name)
	if err != nil {
		return nil, renamePathError(err, p)
	}
	if st, err := sub.Stat("."); err != nil || !os.SameFile(fi, st) {
		sub.Close()
		return nil, fmt.Errorf("%s was replaced while it was being opened (%w?); refusing to write through it", p, ErrSymlink)
	}
	return sub, nil
}

// PendingFile is a new file that replaces a name in a directory when it is committed, as
// [Write] does: whoever opens the name sees the old content or the new, never a mix, and a
// crash leaves the old. Write its content through the embedded *os.File, then call Commit;
// defer Cleanup to remove it if Commit is not reached. It is not safe for concurrent use.
type PendingFile struct {
	*os.File
	dir       *os.Root
	tmp, name string
	done      bool
}

// CreateIn starts replacing name, one path component, in dir by a file with permissions perm
// (exactly: the umask does not apply). With uid or gid >= 0 the file is given to them before it
// has any content (as [os.Chown]: -1 keeps the caller's). A symbolic link at name is refused with
// an error wrapping [ErrSymlink], and a directory or any other non-regular file is refused too:
// neither is replaced. dir must stay open until Commit or Cleanup.
func CreateIn(dir *os.Root, name string, perm os.FileMode, uid, gid int) (*PendingFile, error) {
	p := filepath.Join(dir.Name(), name)
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("%s: expected a file name, found %q", dir.Name(), name)
	}
	switch fi, err := dir.Lstat(name); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, renamePathError(err, p)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s %w; refusing to write through it", p, ErrSymlink)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: expected a regular file or nothing, found a %s", p, Kind(fi.Mode()))
	}
	// A random name created exclusively: openat with O_CREATE|O_EXCL never follows a link.
	tmp := ".tmp-" + rand.Text()
	f, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, renamePathError(err, filepath.Join(dir.Name(), tmp))
	}
	pf := &PendingFile{File: f, dir: dir, tmp: tmp, name: name}
	err = f.Chmod(perm) // the umask must not narrow perm
	if err == nil && (uid >= 0 || gid >= 0) {
		err = f.Chown(uid, gid)
	}
	if err != nil {
		pf.Cleanup()
		return nil, fmt.Errorf("replace %s: %w", p, err)
	}
	return pf, nil
}

// Commit fsyncs the file, renames it over its target and fsyncs the directory. On error the
// target is unchanged (unless only the directory's fsync failed) and the file is removed.
func (p *PendingFile) Commit() error {
	target := filepath.Join(p.dir.Name(), p.name)
	if p.done {
		return fmt.Errorf("replace %s: already committed or cleaned up", target)
	}
	err := p.Sync()
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.dir.Rename(p.tmp, p.name)
	}
	if err != nil {
		p.dir.Remove(p.tmp)
		p.done = true
		return fmt.Errorf("replace %s: %w", target, err)
	}
	p.done = true
	return syncRootDir(p.dir)
}

// Cleanup closes and removes the file unless it was committed. It is safe to call more than
// once and after Commit.
func (p *PendingFile) Cleanup() error {
	if p.done {
		return nil
	}
	p.done = true
	p.Close()
	if err := p.dir.Remove(p.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WriteIn replaces name in dir by b with permissions perm and owner uid:gid (-1 keeps the
// caller's), as [CreateIn] and [PendingFile.Commit] do.
func WriteIn(dir *os.Root, name string, b []byte, perm os.FileMode, uid, gid int) error {
	f, err := CreateIn(dir, name, perm, uid, gid)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("replace %s: %w", filepath.Join(dir.Name(), name), err)
	}
	return f.Commit()
}

// syncRootDir makes a rename in dir durable.
func syncRootDir(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir.Name(), err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir.Name(), err)
	}
	return nil
}

// renamePathError puts the absolute path p into err if it is an *fs.PathError, whose path an
// os.Root sets relative to itself.
func renamePathError(err error, p string) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return &fs.PathError{Op: pe.Op, Path: p, Err: pe.Err}
	}
	return fmt.Errorf("%s: %w", p, err)
}

// Kind names a file type for errors ("regular file", "symbolic link", "named pipe", ...).
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "regular file"
	}
	return "file of type " + m.Type().String()
}
