package enclave

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
)

// mapMinSize is the size from which a trusted file is hashed mapped instead of read: mapping
// saves copying the file out of the page cache, but mapping and unmapping a file costs some
// 30 µs on these virtual machines (the unmapping interrupts every other CPU the process runs
// on), more than copying a small file. The 256 MiB of BenchmarkVerifyFilesTree took 164 ms of
// CPU mapped and 180-198 ms read (SHA-256 alone: 156 ms); its 1,000 files of 4 KiB took five
// times as long mapped.
const mapMinSize = hashBufSize

// errFault is the error of hashMapping when the mapped file shrank under it.
var errFault = errors.New("changed while it was read (it shrank under the hash)")

// mapFile maps the first size bytes of f read-only, or fails (a file system that cannot map
// files, a size that does not fit an int), and the caller reads f instead.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || size != int64(int(size)) {
		return nil, fmt.Errorf("cannot map %d bytes", size)
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
}

// hashMapping hashes b, a mapping of a file, in hashBufSize pieces, and stops early with
// errCanceled when done is closed. If the file shrank under the mapping (the host may change
// any file), reading past its new end faults: that fault becomes errFault, not a crash of the
// launch.
func hashMapping(b []byte, done <-chan struct{}) (d Digest, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if re, ok := r.(interface{ Addr() uintptr }); ok && re.Addr() != 0 {
				err = errFault
				return
			}
			panic(r)
		}
	}()
	h := sha256.New()
	for off := 0; off < len(b); off += hashBufSize {
		select {
		case <-done:
			return Digest{}, errCanceled
		default:
		}
		h.Write(b[off:min(off+hashBufSize, len(b))])
	}
	h.Sum(d[:0])
	return d, nil
}

// hashFileMapped hashes the first size bytes of f mapped; mapped is false if f cannot be
// mapped, and the caller reads it instead.
func hashFileMapped(f *os.File, size int64, done <-chan struct{}) (d Digest, mapped bool, err error) {
	b, err := mapFile(f, size)
	if err != nil {
		return Digest{}, false, nil
	}
	defer syscall.Munmap(b)
	d, err = hashMapping(b, done)
	return d, true, err
}

// hashFileMappedSized is hashFileMapped, and the file's size once hashed (-1 if unknown): a
// file cut short within its last page reads as zeros through the mapping instead of faulting,
// so only its size afterwards tells that it changed.
func hashFileMappedSized(f *os.File, size int64, done <-chan struct{}) (d Digest, mapped bool, n int64, err error) {
	d, mapped, err = hashFileMapped(f, size, done)
	if !mapped || err != nil {
		return d, mapped, size, err
	}
	fi, err := f.Stat()
	if err != nil {
		return d, mapped, -1, nil
	}
	return d, mapped, fi.Size(), nil
}
