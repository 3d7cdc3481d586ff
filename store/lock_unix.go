//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockPollInterval is how often lockDir retries a held lock.
const lockPollInterval = 10 * time.Millisecond

// lockDir takes an exclusive flock on the directory of root, waiting up to
// timeout. The lock lasts until the returned file is closed. flock locks
// belong to the open file, so a second DB in the same process is refused
// like another process.
func lockDir(root *os.Root, timeout time.Duration) (*os.File, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("store: opening directory to lock it: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			d.Close()
			return nil, fmt.Errorf("store: locking directory: %w", err)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			d.Close()
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, root.Name(), timeout)
		}
		time.Sleep(min(lockPollInterval, remaining))
	}
}
