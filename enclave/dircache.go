package enclave

import (
	"io/fs"
	"os"
	"path"
	"sync"
)

// maxCachedDirs bounds the directory handles a dirCache keeps open.
const maxCachedDirs = 512

// dirCache opens files below a root through cached handles of their
// directories. os.Root resolves a name one component at a time, two system
// calls each, so for the deep paths of real images a cached parent makes
// opening a file one openat instead of a dozen system calls.
//
// A handle for directory d is top.OpenRoot(d), made from the handle of d's
// parent, so a name opened through it resolves inside d and therefore
// inside top, to the same file top would find. Resolving inside d is
// stricter than inside top (a symbolic link may not leave d), so any
// failure is retried through top, which keeps top's semantics exactly.
// It is safe for concurrent use.
type dirCache struct {
	top *os.Root
	mu  sync.Mutex           // guards dirs
	dir map[string]*dirEntry // by slash-separated path relative to top
}

type dirEntry struct {
	once sync.Once
	root *os.Root
	err  error
}

func newDirCache(top *os.Root) *dirCache {
	return &dirCache{top: top, dir: make(map[string]*dirEntry)}
}

// open opens name, a slash-separated path relative to the top, for reading
// without blocking; see openNonBlocking.
func (c *dirCache) open(name string) (*os.File, error) {
	if fs.ValidPath(name) {
		if d, err := c.get(path.Dir(name)); err == nil {
			if f, err := openNonBlocking(d, path.Base(name)); err == nil {
				return f, nil
			}
		}
	}
	return openNonBlocking(c.top, name)
}

// get returns the handle of directory dir ("." is the top).
func (c *dirCache) get(dir string) (*os.Root, error) {
	if dir == "." {
		return c.top, nil
	}
	c.mu.Lock()
	e := c.dir[dir]
	if e == nil {
		if len(c.dir) >= maxCachedDirs {
			c.mu.Unlock()
			return nil, fs.ErrInvalid
		}
		e = new(dirEntry)
		c.dir[dir] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		parent, err := c.get(path.Dir(dir))
		if err != nil {
			e.err = err
			return
		}
		e.root, e.err = parent.OpenRoot(path.Base(dir))
	})
	return e.root, e.err
}

// close closes every cached handle; the top is the caller's.
func (c *dirCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.dir {
		if e.root != nil {
			e.root.Close()
		}
	}
	clear(c.dir)
}
