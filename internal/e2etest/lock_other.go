//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package e2etest

import "errors"

// Without flock(2) every test process builds its own binaries.

type fileLock struct{}

// cacheBase returns "": there is no shared cache.
func cacheBase() (string, error) { return "", nil }

var errNoLocks = errors.New("no file locks on this system")

func lockFile(string, bool) (*fileLock, error)  { return nil, errNoLocks }
func tryLockExclusive(string) (*fileLock, bool) { return nil, false }
func (*fileLock) keepShared()                   {}
func (*fileLock) unlock()                       {}
