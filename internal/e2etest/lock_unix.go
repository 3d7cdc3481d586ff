//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package e2etest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fileLock is an flock(2) lock on an open file. It holds the descriptor itself, not an
// *os.File, so that no finalizer closes it (and drops the lock) while the process runs.
type fileLock struct{ fd int }

// cacheBase returns the directory of the cache entries, made if needed. It is private to the
// user: the tests run what it holds.
func cacheBase() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cloister-e2etest-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("binary cache %s: expected a directory of user %d with mode 0700; found mode %v", dir, os.Getuid(), fi.Mode())
	}
	return dir, nil
}

// lockFile locks path, which it creates if needed: exclusively, or shared with other shared
// holders. It waits for the lock.
func lockFile(path string, exclusive bool) (*fileLock, error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		fd, err := open(path, syscall.O_RDWR|syscall.O_CREAT)
		if err != nil {
			return nil, err
		}
		if err := flock(fd, how); err != nil {
			syscall.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if samePath(fd, path) {
			return &fileLock{fd}, nil
		}
		// prune removed the file between the open and the lock: lock the one now there.
		syscall.Close(fd)
	}
}

// tryLockExclusive locks path if it exists and nobody holds a lock on it.
func tryLockExclusive(path string) (*fileLock, bool) {
	fd, err := open(path, syscall.O_RDWR)
	if err != nil {
		return nil, false
	}
	if flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) != nil || !samePath(fd, path) {
		syscall.Close(fd)
		return nil, false
	}
	return &fileLock{fd}, true
}

// keepShared turns the lock into a shared one (if it is not) and keeps it until the process
// exits: the descriptor is never closed.
func (l *fileLock) keepShared() {
	// A failure leaves the exclusive lock in place, which protects the entry as well.
	_ = flock(l.fd, syscall.LOCK_SH)
}

func (l *fileLock) unlock() { syscall.Close(l.fd) }

func open(path string, mode int) (int, error) {
	for {
		fd, err := syscall.Open(path, mode|syscall.O_CLOEXEC, 0o600)
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return -1, &fs.PathError{Op: "open", Path: path, Err: err}
			}
			return fd, nil
		}
	}
}

// flock is flock(2), retried when a signal interrupts it.
func flock(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// samePath reports whether path still names the open file fd.
func samePath(fd int, path string) bool {
	var a, b syscall.Stat_t
	if syscall.Fstat(fd, &a) != nil || syscall.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
