package store

import (
	"os"
	"syscall"
)

// datasync flushes f's data to stable storage without its timestamps, as bbolt does: the
// version record is rewritten in place, so its size never changes.
func datasync(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := conn.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}
