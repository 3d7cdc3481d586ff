package enclave

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloister-dev/cloister/protect"
)

// VerifyOptions tunes [Manifest.VerifyFiles]. The zero value gives the defaults.
type VerifyOptions struct {
	// Workers is how many files are hashed at once; 0 or less means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// Mismatch is one trusted or protected file that does not match the manifest.
type Mismatch struct {
	// Path is the file's path in the manifest.
	Path string
	// Expected is what the manifest records, e.g. "size 1024" or "sha256 ab…".
	Expected string
	// Found is what the file system holds, e.g. "missing" or "size 1000".
	Found string
}

// String returns "path: expected …, found …".
func (m Mismatch) String() string {
	return fmt.Sprintf("%s: expected %s, found %s", m.Path, m.Expected, m.Found)
}

// maxListed bounds the mismatches a [FilesError] message lists.
const maxListed = 20

// FilesError is the error of [Manifest.VerifyFiles] when files do not match.
// It lists every mismatch, sorted by path; its message shows the first 20.
type FilesError struct {
	Mismatches []Mismatch
}

// Error lists the number of mismatches and the first 20 of them.
func (e *FilesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "enclave: %d trusted files do not match the manifest:", len(e.Mismatches))
	for i, m := range e.Mismatches {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  and %d more", len(e.Mismatches)-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(m.String())
	}
	return b.String()
}

// fileCheck is one file VerifyFiles checks.
type fileCheck struct {
	path string
	size int64 // bytes on disk
	sum  Digest
	note string // added to size descriptions, e.g. " (encrypted)"
	// For a protected file: where its encrypted copy is, and the target the
	// symbolic link at path must have.
	stored, link string
}

// VerifyFiles checks every file of m.Files and m.ProtectedFiles under the
// directory root, which stands for "/" of the image: each must be a regular
// file (symbolic links are followed only within root) with the recorded
// size and SHA-256 digest. For a protected file that is its encrypted copy
// at [Manifest.EncryptedPath], of the encrypted size, and its own path must
// be a symbolic link whose target is exactly [Manifest.PlaintextPath] (the
// launcher never writes there, so a restart finds the same). Files are
// hashed in parallel, files of 1 MiB or more mapped, smaller ones read with pooled 1 MiB
// buffers.
//
// It returns nil when every file matches, a [*FilesError] listing every
// mismatch, or another error if root cannot be opened or ctx ends first.
// It does not validate m.
func (m *Manifest) VerifyFiles(ctx context.Context, root string, opts VerifyOptions) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("enclave: verifying trusted files: %w", err)
	}
	defer r.Close()
	dirs := newDirCache(r)
	defer dirs.close()

	checks := make([]fileCheck, 0, len(m.Files)+len(m.ProtectedFiles))
	for _, f := range m.Files {
		checks = append(checks, fileCheck{path: f.Path, size: f.Size, sum: f.SHA256})
	}
	for _, f := range m.ProtectedFiles {
		checks = append(checks, fileCheck{path: f.Path, size: protect.EncryptedSize(f.Size, f.Path),
			sum: f.SHA256, note: " (encrypted)", stored: m.EncryptedPath(f.Path), link: m.PlaintextPath(f.Path)})
	}
	// Largest first, so that one big file does not start last and run alone.
	slices.SortStableFunc(checks, func(a, b fileCheck) int { return cmp.Compare(b.size, a.size) })

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(checks))

	var (
		next atomic.Int64
		mu   sync.Mutex // guards bad
		bad  []Mismatch
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			buf := hashBufs.Get().(*[hashBufSize]byte)
			defer hashBufs.Put(buf)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(checks) || ctx.Err() != nil {
					return
				}
				if mm, ok := checkFile(dirs, &checks[i], buf[:], ctx.Done()); !ok {
					mu.Lock()
					bad = append(bad, mm)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enclave: verifying trusted files: %w", context.Cause(ctx))
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b Mismatch) int { return cmp.Compare(a.Path, b.Path) })
		return &FilesError{Mismatches: bad}
	}
	return nil
}

// checkFile compares one file with its record.
func checkFile(dirs *dirCache, c *fileCheck, buf []byte, done <-chan struct{}) (Mismatch, bool) {
	mm := Mismatch{Path: c.path, Expected: "a regular file"}
	name := c.path
	if c.stored != "" {
		if found := checkLink(dirs.top, c.path, c.link); found != "" {
			mm.Expected, mm.Found = "a symbolic link to "+c.link, found
			return mm, false
		}
		name = c.stored
		mm.Expected = "its encrypted copy at " + c.stored + " (a regular file)"
	}
	f, err := dirs.open(strings.TrimPrefix(name, "/"))
	if err != nil {
		mm.Found = describeOpenError(err)
		return mm, false
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		mm.Found = describeOpenError(err)
		return mm, false
	case !fi.Mode().IsRegular():
		mm.Found = describeMode(fi.Mode())
		return mm, false
	case fi.Size() != c.size:
		mm.Expected, mm.Found = fmt.Sprintf("size %d%s", c.size, c.note), fmt.Sprintf("size %d", fi.Size())
		return mm, false
	}
	var (
		sum    Digest
		mapped bool
		n      = c.size
	)
	if c.size >= mapMinSize {
		sum, mapped, n, err = hashFileMappedSized(f, c.size, done)
	}
	if !mapped {
		sum, n, err = hashLimited(f, buf, c.size, done)
	}
	switch {
	case errors.Is(err, errCanceled):
		return mm, true // the caller reports the cancellation
	case errors.Is(err, errFault):
		mm.Found = err.Error()
	case err != nil:
		mm.Found = describeOpenError(err)
	case n != c.size && mapped:
		mm.Expected, mm.Found = fmt.Sprintf("size %d%s", c.size, c.note), fmt.Sprintf("size %d once hashed (the file changed while it was read)", n)
	case n != c.size:
		mm.Expected, mm.Found = fmt.Sprintf("size %d%s", c.size, c.note), fmt.Sprintf("only %d bytes when read", n)
	case sum != c.sum:
		mm.Expected, mm.Found = "sha256 "+c.sum.String()+c.note, "sha256 "+sum.String()
	default:
		return mm, true
	}
	return mm, false
}

// checkLink returns "" if p (absolute) is a symbolic link to exactly
// target, and otherwise what it is.
func checkLink(r *os.Root, p, target string) string {
	name := strings.TrimPrefix(p, "/")
	fi, err := r.Lstat(name)
	if err != nil {
		return describeOpenError(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return describeMode(fi.Mode())
	}
	got, err := r.Readlink(name)
	switch {
	case err != nil:
		return describeOpenError(err)
	case got != target:
		return fmt.Sprintf("a symbolic link to %q", got)
	}
	return ""
}

// describeOpenError says briefly why a file could not be read.
func describeOpenError(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "missing"
	}
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return "unreadable (" + err.Error() + ")"
}
