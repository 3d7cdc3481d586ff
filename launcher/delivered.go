package launcher

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
)

// DeliveredDir is where the delivered files live: memory-backed storage only.
const DeliveredDir = enclave.DeliveredDir

// deliveredStore is the memory-backed directory that holds the delivered files of a launch,
// each at its path below it, open for the launch's life (renewals write into it again).
//
// A shared flock on it marks it in use. A launch that can take the lock exclusively is the only
// one using it and empties it first (what an earlier start of the container left there); one
// that cannot (another launcher on the same /dev/shm, as when several run on one host) leaves it
// as it is and replaces only its own files. The lock lives as long as the launcher or, with exec,
// as the application.
type deliveredStore struct {
	root *os.Root
	lock *os.File // the directory, flocked shared
	// memoryBacked refuses a directory that is not memory-backed; nil means checkMemoryBacked
	// (tmpfs by statfs). Inside Gramine it is the enclave manifest's in-enclave tmpfs mounts.
	memoryBacked func(*os.Root) error
	// noLinks is set inside Gramine, whose host file system has no symbolic links: a delivered
	// file must then be in memory-backed storage itself.
	noLinks bool
}

// memory refuses dir unless it is memory-backed storage, as this launch decides it.
func (s *deliveredStore) memory(dir *os.Root) error {
	if s.memoryBacked != nil {
		return s.memoryBacked(dir)
	}
	return checkMemoryBacked(dir)
}

// openDelivered opens dir (creating it 0755), refuses it unless it is memory-backed, and empties
// it unless another live launcher uses it.
func openDelivered(dir string, log *slog.Logger) (*deliveredStore, error) {
	return openDeliveredIn(dir, nil, log)
}

// openDeliveredIn is openDelivered with memoryBacked deciding what is memory-backed storage
// (nil: tmpfs, by statfs).
func openDeliveredIn(dir string, memoryBacked func(*os.Root) error, log *slog.Logger) (*deliveredStore, error) {
	root, err := atomicfile.OpenDir(dir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("delivered files: %w", notWritable(err, dir))
	}
	s := &deliveredStore{root: root, memoryBacked: memoryBacked}
	if err := s.init(log); err != nil {
		s.close()
		return nil, fmt.Errorf("delivered files: %w", err)
	}
	return s, nil
}

func (s *deliveredStore) init(log *slog.Logger) error {
	if err := s.memory(s.root); err != nil {
		return err
	}
	f, err := s.root.Open(".")
	if err != nil {
		return err
	}
	s.lock = f
	fd := int(f.Fd())
	switch err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil, errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EINVAL):
		// Alone (or no locks, as inside an enclave, where nobody else shares the tmpfs).
		if err := clearDir(s.root); err != nil {
			return fmt.Errorf("clear %s, left by an earlier start: %w", s.root.Name(), err)
		}
		if err := s.root.Chmod(".", 0o755); err != nil {
			return err
		}
	case errors.Is(err, syscall.EWOULDBLOCK):
		log.Info("another launcher uses the delivered files' directory; leaving its files", "dir", s.root.Name())
	default:
		return fmt.Errorf("lock %s: %w", s.root.Name(), err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("lock %s: %w", s.root.Name(), err)
	}
	return nil
}

// keepAcrossExec lets the application inherit the lock, so that a launcher started later on the
// same /dev/shm does not empty the directory under it.
func (s *deliveredStore) keepAcrossExec() {
	if s != nil && s.lock != nil {
		syscall.Syscall(syscall.SYS_FCNTL, s.lock.Fd(), syscall.F_SETFD, 0)
	}
}

func (s *deliveredStore) close() {
	if s == nil {
		return
	}
	if s.lock != nil {
		s.lock.Close()
	}
	s.root.Close()
}

// notWritable names the requirement when dir cannot be created or written for lack of
// permission, as with a non-root container user and a /dev/shm it cannot write.
func notWritable(err error, dir string) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s is not writable by uid %d (%w): the launcher needs memory-backed storage it can write at %s; make /dev/shm writable by that user (the default tmpfs of podman, docker and Kubernetes is)",
			dir, os.Geteuid(), err, filepath.Dir(dir))
	}
	return err
}

// pendingLink is a symbolic link made beside its target, renamed over it on commit.
type pendingLink struct {
	dir       *os.Root
	tmp, name string
}

// writeFiles writes the delivered files, each 0600, replacing what was there atomically. With
// uid >= 0 the files belong to the application's user, who alone may read them.
//
// No delivered file touches disk. A file whose directory is memory-backed (a tmpfs mount) is
// written there. Any other is written into store at the same path below it (parents 0755), and
// its path becomes a symbolic link to that copy: made beside it and renamed into place, replacing
// a regular file or the same link left by an earlier start. Renewals rewrite the copies; the
// links stay.
//
// The image's file system is the host's, so it may hold planted symbolic links. None is
// followed: every directory on a file's path is opened component by component without following
// links (missing ones are created 0755), and a link anywhere on the path, or any other link or
// non-regular file at the file itself, is refused. Nothing is replaced until every file is
// written, so a refusal leaves every target as it was.
func writeFiles(store *deliveredStore, files map[string][]byte, uid, gid int) error {
	if len(files) == 0 {
		return nil
	}
	dirs := map[string]*os.Root{}
	memDirs := map[string]*os.Root{}
	defer func() {
		for _, d := range dirs {
			d.Close()
		}
		for _, d := range memDirs {
			d.Close()
		}
	}()
	memory := map[string]bool{} // directories of the delivered paths that are tmpfs mounts
	var pending []*atomicfile.PendingFile
	var links []pendingLink
	defer func() {
		for _, f := range pending {
			f.Cleanup()
		}
		for _, l := range links {
			l.dir.Remove(l.tmp)
		}
	}()
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if err := checkDeliveredPath(p); err != nil {
			return err
		}
		dir, name := filepath.Split(p)
		dir = filepath.Clean(dir)
		d, ok := dirs[dir]
		if !ok {
			var err error
			if d, err = atomicfile.OpenDir(dir, 0o755); err != nil {
				return fmt.Errorf("delivered file %s: %w", p, readOnlyRoot(err, p, dir, store))
			}
			dirs[dir] = d
			memory[dir] = store.memory(d) == nil
		}
		if memory[dir] {
			f, err := atomicfile.CreateIn(d, name, 0o600, uid, gid)
			if err != nil {
				return fmt.Errorf("delivered file %s: %w", p, err)
			}
			pending = append(pending, f)
			if _, err := f.Write(files[p]); err != nil {
				return fmt.Errorf("write delivered file %s: %w", p, err)
			}
			continue
		}
		if store.noLinks {
			return fmt.Errorf("delivered file %s: %s is not memory-backed storage of this enclave, and Gramine's host file system has no symbolic links to link the file to a copy there; refusing to write it to the host's disk", p, dir)
		}
		// The copy in memory.
		md, ok := memDirs[dir]
		if !ok {
			rel := strings.TrimPrefix(dir, "/")
			if rel == "" {
				rel = "."
			}
			var err error
			md, err = atomicfile.OpenDirIn(store.root, rel, 0o755)
			if err == nil {
				if err = store.memory(md); err != nil {
					md.Close()
				}
			}
			if err != nil {
				return fmt.Errorf("delivered file %s: %w", p, err)
			}
			memDirs[dir] = md
		}
		f, err := atomicfile.CreateIn(md, name, 0o600, uid, gid)
		if err != nil {
			return fmt.Errorf("delivered file %s: %w", p, err)
		}
		pending = append(pending, f)
		if _, err := f.Write(files[p]); err != nil {
			return fmt.Errorf("write delivered file %s: %w", p, err)
		}
		// The link at the delivered path.
		target := filepath.Join(store.root.Name(), p)
		done, err := checkLinkTarget(d, name, p, target)
		if err != nil {
			return err
		}
		if done {
			continue // left by an earlier start: already right
		}
		tmp := ".tmp-" + rand.Text()
		if err := d.Symlink(target, tmp); err != nil {
			return fmt.Errorf("delivered file %s: %w", p, readOnlyRoot(err, p, dir, store))
		}
		links = append(links, pendingLink{dir: d, tmp: tmp, name: name})
	}
	for _, f := range pending {
		if err := f.Commit(); err != nil { // names the file
			return fmt.Errorf("write delivered file: %w", err)
		}
	}
	renamed := map[*os.Root]bool{}
	for len(links) > 0 {
		l := links[0]
		if err := l.dir.Rename(l.tmp, l.name); err != nil {
			return fmt.Errorf("delivered file %s: %w", filepath.Join(l.dir.Name(), l.name), err)
		}
		links = links[1:]
		renamed[l.dir] = true
	}
	for d := range renamed {
		syncDir(d)
	}
	return nil
}

// syncDir makes the renames in dir durable; a failure changes nothing the application sees.
func syncDir(dir *os.Root) {
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
}

// readOnlyRoot names the requirement when a delivered file's link cannot be made because the
// root file system is read-only.
func readOnlyRoot(err error, p, dir string, store *deliveredStore) error {
	if !errors.Is(err, syscall.EROFS) {
		return err
	}
	return fmt.Errorf("the file system at %s is read-only (%w), so the launcher cannot link it to its copy in memory-backed storage (%s), and a delivered file is never written to disk: "+
		"mount a tmpfs at %s (podman run --tmpfs %s; Kubernetes: an emptyDir with medium Memory) or deliver the file below /dev/shm",
		dir, err, filepath.Join(store.root.Name(), p), dir, dir)
}
