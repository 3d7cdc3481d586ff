package enclave

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Launcher identifies the launcher binary an image was converted with (or a host manifest
// signed for): the binary whose hash is half of the simulated MRENCLAVE ([SimMRENCLAVE]).
//
// Recording it lets a launcher in simulation take its own hash from the signed manifest
// instead of hashing its whole executable at every start (3.7 ms of CPU for a 6.3 MB launcher,
// a quarter of a start): it checks that it is this binary by its size and Go build ID, and
// only when no build ID was recorded, or it cannot read its own, does it hash itself and
// compare. A launcher of another size or build ID is refused at once. The converter
// (image.DescribeLauncher) records a build ID only if its last part is the Go toolchain's
// content hash of the file, so another build of the launcher has another ID, and one pinned
// with -ldflags=-buildid is not recorded. What the check cannot catch is a binary changed
// after linking while keeping its size and build ID: by accident only in the GNU build ID
// note, which cmd/go leaves out of its hash; on purpose anywhere. Neither matters in
// simulation, where whoever can run such a launcher can as well forge its quotes with the
// simulated platform. Under Gramine the launcher is a trusted file of the Gramine manifest and
// SGX measures it; this record is not used.
type Launcher struct {
	// SHA256 is the SHA-256 digest of the launcher binary.
	SHA256 Digest `json:"sha256"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// GoBuildID is its Go build ID ([ReadGoBuildID]); empty for a binary without a build ID
	// that ends with the Go toolchain's content hash of the file.
	GoBuildID string `json:"go_build_id,omitempty"`
}

// LauncherFieldTag is the struct tag of [Manifest.Launcher]. encoding/json reads it at run
// time, so it is in every launcher binary that knows the record and in none older: a converter
// looks for it in the launcher it is given.
const LauncherFieldTag = `json:"launcher,omitempty"`

// maxLauncherSize bounds [Launcher.Size]: 1 GiB, far above any launcher.
const maxLauncherSize = 1 << 30

// maxBuildID bounds a Go build ID in bytes; the go command writes four base64 hashes
// separated by slashes, 83 bytes.
const maxBuildID = 256

// validateLauncher checks the launcher record, if any.
func (m *Manifest) validateLauncher(p *problems) {
	l := m.Launcher
	if l == nil {
		return
	}
	if l.SHA256.IsZero() {
		p.addf("launcher.sha256: missing")
	}
	if l.Size <= 0 || l.Size > maxLauncherSize {
		p.addf("launcher.size: expected 1..%d, found %d", maxLauncherSize, l.Size)
	}
	if why := checkBuildID(l.GoBuildID); why != "" {
		p.addf("launcher.go_build_id %q: %s", l.GoBuildID, why)
	}
}

// checkBuildID says why id is not a Go build ID as the go command writes them (base64url
// hashes separated by slashes), or "".
func checkBuildID(id string) string {
	if len(id) > maxBuildID {
		return fmt.Sprintf("expected at most %d bytes, found %d", maxBuildID, len(id))
	}
	for _, c := range []byte(id) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/'
		if !ok {
			return fmt.Sprintf("expected base64url characters and slashes, found %q", c)
		}
	}
	return ""
}

// ErrForeignBuildID marks a Go build ID note whose text is not what the go command writes
// (base64url hashes and slashes), such as one set with -ldflags=-buildid: [ReadGoBuildID]
// returns it, and a converter records no ID for such a launcher.
var ErrForeignBuildID = errors.New("not a build ID as the go command writes them")

// ELF constants for reading a Go build ID note; see the ELF specification's program header
// and note sections, and cmd/link, which writes the note.
const (
	elfHeaderSize64 = 64
	elfPhdrSize64   = 56
	elfPTNote       = 4
	goBuildIDNote   = 4 // the note type the Go linker gives its build ID, under the name "Go"
	maxPhdrs        = 64
	maxNoteSegment  = 64 << 10
)

// ReadGoBuildID returns the Go build ID of the 64-bit ELF executable r: the description of
// the note named "Go" of type 4 in a PT_NOTE segment, as the Go linker writes it (and
// `go tool buildid` prints it). It reads the ELF header, the program headers and the note
// segments only, a few kilobytes, not the whole file. An executable without such a note has
// the ID "" and no error. A file that is not a 64-bit ELF executable, or whose program headers
// are out of bounds, is an error; so is a Go note whose text is not base64url and slashes (an
// ID pinned with -ldflags=-buildid). A malformed note segment is skipped, and is the error
// only if no other segment holds the Go note. It does not use debug/elf, which would link
// compression code into the launcher.
func ReadGoBuildID(r io.ReaderAt) (string, error) {
	var eh [elfHeaderSize64]byte
	if _, err := r.ReadAt(eh[:], 0); err != nil {
		return "", fmt.Errorf("read ELF header: expected %d bytes: %w", len(eh), err)
	}
	if !bytes.Equal(eh[:4], []byte("\x7fELF")) {
		return "", fmt.Errorf("expected an ELF executable, found the bytes %q", eh[:4])
	}
	if eh[4] != 2 {
		return "", fmt.Errorf("expected a 64-bit ELF executable, found ELF class %d", eh[4])
	}
	var bo binary.ByteOrder
	switch eh[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return "", fmt.Errorf("ELF data encoding: expected 1 or 2, found %d", eh[5])
	}
	phoff, phentsize, phnum := bo.Uint64(eh[0x20:]), bo.Uint16(eh[0x36:]), bo.Uint16(eh[0x38:])
	if phnum > maxPhdrs {
		return "", fmt.Errorf("ELF program headers: expected at most %d, found %d", maxPhdrs, phnum)
	}
	if phnum > 0 && phentsize != elfPhdrSize64 {
		return "", fmt.Errorf("ELF program header size: expected %d, found %d", elfPhdrSize64, phentsize)
	}
	if phoff > maxLauncherSize {
		return "", fmt.Errorf("ELF program header offset %d is out of bounds", phoff)
	}
	phdrs := make([]byte, int(phnum)*elfPhdrSize64)
	if _, err := r.ReadAt(phdrs, int64(phoff)); err != nil {
		return "", fmt.Errorf("read ELF program headers: %w", err)
	}
	var first error // of a malformed note segment
	for i := range int(phnum) {
		ph := phdrs[i*elfPhdrSize64:]
		if bo.Uint32(ph) != elfPTNote {
			continue
		}
		id, found, err := readNoteSegment(r, bo, ph)
		switch {
		case err != nil:
			if first == nil {
				first = fmt.Errorf("ELF note segment %d: %w", i, err)
			}
		case found:
			if why := checkBuildID(id); why != "" {
				return "", fmt.Errorf("build ID note %q: %s: %w", id, why, ErrForeignBuildID)
			}
			return id, nil
		}
	}
	return "", first
}

// readNoteSegment reads the note segment of program header ph and looks for the Go build ID
// in it. Notes are padded to 4 bytes, or to 8 in a segment aligned to 8.
func readNoteSegment(r io.ReaderAt, bo binary.ByteOrder, ph []byte) (id string, found bool, err error) {
	off, size, align := bo.Uint64(ph[0x08:]), bo.Uint64(ph[0x20:]), bo.Uint64(ph[0x30:])
	if size > maxNoteSegment || off > maxLauncherSize {
		return "", false, fmt.Errorf("offset %d, size %d out of bounds", off, size)
	}
	seg := make([]byte, size)
	if _, err := r.ReadAt(seg, int64(off)); err != nil {
		return "", false, err
	}
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	return findGoNote(seg, bo, pad)
}

// findGoNote walks the notes of one note segment for the Go build ID. pad is the notes'
// alignment: each note's description, and the next note, begin at a multiple of pad from the
// segment's start.
func findGoNote(seg []byte, bo binary.ByteOrder, pad uint64) (id string, found bool, err error) {
	align := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	n := uint64(len(seg))
	for at := uint64(0); at < n; {
		if n-at < 12 {
			return "", false, fmt.Errorf("expected a 12-byte note header at %d, found %d bytes", at, n-at)
		}
		namesz, descsz, typ := uint64(bo.Uint32(seg[at:])), uint64(bo.Uint32(seg[at+4:])), bo.Uint32(seg[at+8:])
		descAt := align(at + 12 + namesz) // namesz < 2^32: no overflow
		if descAt > n || descsz > n-descAt {
			return "", false, fmt.Errorf("note at %d runs past the end of its segment", at)
		}
		if name := seg[at+12 : at+12+namesz]; typ == goBuildIDNote && string(bytes.TrimRight(name, "\x00")) == "Go" {
			return string(seg[descAt : descAt+descsz]), true, nil
		}
		at = align(descAt + descsz) // the last note's padding may be cut off by the segment's end
	}
	return "", false, nil
}
