package image

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/gobuildid"
)

// DescribeLauncher reads the launcher binary at path and returns its record for the enclave
// manifest ([enclave.Manifest.Launcher]): its SHA-256, size and Go build ID. The build ID is
// recorded only if its last part is the Go toolchain's content hash of the file, as cmd/go
// computes it after linking (the first 15 bytes, in base64url, of the SHA-256 of the file with
// the GNU build ID note's description and every occurrence of the Go build ID zeroed): then any
// other build has another ID, and a launcher with the recorded one need not hash itself. A
// binary whose ID was pinned (-ldflags=-buildid) or rewritten is recorded without one, and
// hashes itself at every start in simulation.
//
// The binary must be an ELF executable that knows the record (it holds
// [enclave.LauncherFieldTag]): an older launcher would refuse every manifest that has one.
func DescribeLauncher(path string) (*enclave.Launcher, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: expected an ELF executable: %w", path, err)
	}
	return describeLauncher(path, f, ef)
}

// describeLauncher is [DescribeLauncher] of the open launcher binary f, whose ELF headers are
// ef; path names it in errors.
func describeLauncher(path string, f *os.File, ef *elf.File) (*enclave.Launcher, error) {
	id, err := gobuildid.Read(f)
	if errors.Is(err, gobuildid.ErrForeign) {
		id, err = "", nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var excl [2]int64
	if s := ef.Section(".note.gnu.build-id"); s != nil && s.Size >= 16 && s.Offset <= enclave.MaxLauncherSize {
		excl = [2]int64{int64(s.Offset) + 16, int64(s.Offset + s.Size)} // after the note's header and "GNU\0"
	}
	sc, err := scanLauncher(io.NewSectionReader(f, 0, enclave.MaxLauncherSize+1), []byte(id), []byte(enclave.LauncherFieldTag), excl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sc.size > enclave.MaxLauncherSize {
		return nil, fmt.Errorf("%s: expected at most %d bytes, found more", path, int64(enclave.MaxLauncherSize))
	}
	if !sc.marked {
		return nil, fmt.Errorf("%s is not a launcher that reads the enclave manifest's launcher record: it is older than this cloister, or not a launcher; build it from the same source (%s)",
			path, BuildLauncherHint)
	}
	if i := strings.LastIndexByte(id, '/'); i < 0 || id[i+1:] != base64.RawURLEncoding.EncodeToString(sc.content[:15]) {
		id = ""
	}
	return &enclave.Launcher{SHA256: sc.sum, Size: sc.size, GoBuildID: id}, nil
}

// launcherScan is what scanLauncher found.
type launcherScan struct {
	sum, content [32]byte // of the bytes, and of the bytes with the exclusions zeroed
	size         int64
	marked       bool // whether the mark occurs
}

// scanLauncher reads r once: the SHA-256 of its bytes; the SHA-256 of its bytes with the range
// excl zeroed and then every occurrence of id zeroed (found left to right, not overlapping),
// as cmd/go's content hash; its size; and whether mark occurs in it.
func scanLauncher(r io.Reader, id, mark []byte, excl [2]int64) (launcherScan, error) {
	var sc launcherScan
	raw, con := sha256.New(), sha256.New()
	keep := max(len(id), len(mark)) - 1 // bytes that may begin an occurrence the next read completes
	buf := make([]byte, 0, 256<<10+keep)
	var off int64 // the file offset of buf[0]
	for {
		tail := len(buf)
		n, err := io.ReadFull(r, buf[tail:cap(buf)])
		buf = buf[:tail+n]
		raw.Write(buf[tail:])
		sc.size += int64(n)
		if lo, hi := max(excl[0]-off, int64(tail)), min(excl[1]-off, int64(len(buf))); lo < hi {
			clear(buf[lo:hi])
		}
		if !sc.marked && bytes.Contains(buf, mark) {
			sc.marked = true
		}
		for i := 0; len(id) > 0; {
			j := bytes.Index(buf[i:], id)
			if j < 0 {
				break
			}
			clear(buf[i+j : i+j+len(id)])
			i += j + len(id)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			con.Write(buf)
			break
		}
		if err != nil {
			return sc, err
		}
		k := min(keep, len(buf))
		con.Write(buf[:len(buf)-k])
		off += int64(len(buf) - k)
		buf = append(buf[:0], buf[len(buf)-k:]...)
	}
	raw.Sum(sc.sum[:0])
	con.Sum(sc.content[:0])
	return sc, nil
}
