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

// held is the lock on the cache entry this process uses, held (shared) until the process exits.
// The reference keeps the file from being closed by its finalizer.
var held *fileLock

// fileLock is an flock(2) lock on a file.
type fileLock struct{ f *os.File }

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
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := flock(f, how); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if samePath(f, path) {
			return &fileLock{f}, nil
		}
		// prune removed the file between the open and the lock: lock the one now there.
		f.Close()
	}
}

// tryLockExclusive locks path if it exists and nobody holds a lock on it.
func tryLockExclusive(path string) (*fileLock, bool) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	if flock(f, syscall.LOCK_EX|syscall.LOCK_NB) != nil || !samePath(f, path) {
		f.Close()
		return nil, false
	}
	return &fileLock{f}, true
}

// keepShared turns the lock into a shared one (if it is not) held until the process exits.
func (l *fileLock) keepShared() {
	// A failure leaves the exclusive lock in place, which protects the entry as well.
	_ = flock(l.f, syscall.LOCK_SH)
	held = l
}

func (l *fileLock) unlock() { l.f.Close() }

// flock is flock(2), retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
