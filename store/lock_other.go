//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// lockDir reports that this platform has no directory lock; the store
// refuses to run unlocked rather than risk two writers.
func lockDir(root *os.Root, timeout time.Duration) (*os.File, error) {
	return nil, fmt.Errorf("store: locking a directory is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
