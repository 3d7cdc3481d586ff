package enclave

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// hashBufSize is the read size of the hashing functions: large enough that
// system calls cost little next to SHA-256.
const hashBufSize = 1 << 20

var hashBufs = sync.Pool{New: func() any { return new([hashBufSize]byte) }}

// HashReader returns the SHA-256 digest of everything r yields and its
// length in bytes, reading with a pooled 1 MiB buffer (it does not use
// io.WriterTo, which would pick its own small buffer). It returns r's first
// read error other than io.EOF. It is safe for concurrent use.
func HashReader(r io.Reader) (Digest, int64, error) {
	buf := hashBufs.Get().(*[hashBufSize]byte)
	defer hashBufs.Put(buf)
	return hashLimited(r, buf[:], -1, nil)
}

// HashFile returns the SHA-256 digest and size of the regular file name
// inside root; symbolic links are followed only within root. It fails if
// name is not a regular file.
func HashFile(root *os.Root, name string) (Digest, int64, error) {
	f, err := openNonBlocking(root, name)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Digest{}, 0, err
	}
	if !fi.Mode().IsRegular() {
		return Digest{}, 0, fmt.Errorf("%s: expected a regular file, found %s", name, describeMode(fi.Mode()))
	}
	return HashReader(f)
}

// openNonBlocking opens name in root for reading without blocking, so that
// a named pipe planted where a regular file belongs cannot stall the caller.
// O_NONBLOCK has no effect on reading regular files.
func openNonBlocking(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// errCanceled reports that hashLimited stopped because done was closed.
var errCanceled = errors.New("canceled")

// hashLimited hashes r with buf, reading at most limit bytes when limit is
// not negative, and stops early when done is closed. Callers that know a
// file's size from fstat pass it as limit: reading stops there without the
// extra read that would only confirm the end of the file.
func hashLimited(r io.Reader, buf []byte, limit int64, done <-chan struct{}) (Digest, int64, error) {
	h := sha256.New()
	var n int64
	for limit < 0 || n < limit {
		select {
		case <-done:
			return Digest{}, n, errCanceled
		default:
		}
		b := buf
		if limit >= 0 && int64(len(b)) > limit-n {
			b = b[:limit-n]
		}
		k, err := r.Read(b)
		h.Write(b[:k])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Digest{}, n, err
		}
	}
	var d Digest
	h.Sum(d[:0])
	return d, n, nil
}

// describeMode names the kind of file m describes.
func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a file of mode " + m.String()
}
