package enclave

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Launcher identifies the launcher binary an image was converted with (or a host manifest
// signed for): the binary whose hash is half of the simulated MRENCLAVE ([SimMRENCLAVE]).
//
// Recording it lets a launcher in simulation take its own hash from the signed manifest
// instead of hashing its whole executable at every start (3.7 ms of CPU for a 6.3 MB launcher,
// a quarter of a start): it checks that it is this binary by its size and Go build ID, and
// only when those differ, or no build ID was recorded, does it hash itself and compare. The
// Go build ID ends with the Go toolchain's hash of the linked binary, so another build of the
// launcher has another ID; a deliberately patched binary that keeps its ID and size is not
// noticed, which changes nothing in simulation, where whoever can run a patched launcher can
// as well forge its quotes with the simulated platform. Under Gramine the launcher is a
// trusted file of the Gramine manifest and SGX measures it; this record is not used.
type Launcher struct {
	// SHA256 is the SHA-256 digest of the launcher binary.
	SHA256 Digest `json:"sha256"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// GoBuildID is its Go build ID ([ReadGoBuildID]); empty for a binary without one.
	GoBuildID string `json:"go_build_id,omitempty"`
}

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

// checkBuildID says why id is not a Go build ID as the go command writes them, or "".
func checkBuildID(id string) string {
	if len(id) > maxBuildID {
		return fmt.Sprintf("expected at most %d bytes, found %d", maxBuildID, len(id))
	}
	for _, c := range []byte(id) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' || c == '+' || c == '=' || c == '.'
		if !ok {
			return fmt.Sprintf("expected base64 characters and slashes, found %q", c)
		}
	}
	return ""
}

// DescribeLauncher hashes the launcher binary at path and reads its Go build ID: the record
// a converter puts in [Manifest.Launcher].
func DescribeLauncher(path string) (*Launcher, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	id, err := ReadGoBuildID(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum, size, err := HashReader(io.NewSectionReader(f, 0, maxLauncherSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if size > maxLauncherSize {
		return nil, fmt.Errorf("%s: expected at most %d bytes, found more", path, int64(maxLauncherSize))
	}
	return &Launcher{SHA256: sum, Size: size, GoBuildID: id}, nil
}

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
// the ID "" and no error; a file that is not a 64-bit ELF executable, or whose headers are out
// of bounds, is an error. It does not use debug/elf, which would link compression code into
// the launcher.
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
	for i := range int(phnum) {
		ph := phdrs[i*elfPhdrSize64:]
		if bo.Uint32(ph) != elfPTNote {
			continue
		}
		off, size := bo.Uint64(ph[0x08:]), bo.Uint64(ph[0x20:])
		if size > maxNoteSegment || off > maxLauncherSize {
			return "", fmt.Errorf("ELF note segment %d: offset %d, size %d out of bounds", i, off, size)
		}
		seg := make([]byte, size)
		if _, err := r.ReadAt(seg, int64(off)); err != nil {
			return "", fmt.Errorf("read ELF note segment %d: %w", i, err)
		}
		id, found, err := findGoNote(seg, bo)
		if err != nil {
			return "", fmt.Errorf("ELF note segment %d: %w", i, err)
		}
		if found {
			if why := checkBuildID(id); why != "" {
				return "", fmt.Errorf("Go build ID %q: %s", id, why)
			}
			return id, nil
		}
	}
	return "", nil
}

// findGoNote walks the notes of one note segment for the Go build ID.
func findGoNote(seg []byte, bo binary.ByteOrder) (id string, found bool, err error) {
	align4 := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(seg) > 0 {
		if len(seg) < 12 {
			return "", false, fmt.Errorf("expected a 12-byte note header, found %d bytes", len(seg))
		}
		namesz, descsz, typ := uint64(bo.Uint32(seg)), uint64(bo.Uint32(seg[4:])), bo.Uint32(seg[8:])
		rest := seg[12:]
		// The last note's padding may be cut off by the segment's end.
		if align4(namesz) > uint64(len(rest)) || descsz > uint64(len(rest))-align4(namesz) {
			return "", false, errors.New("note runs past the end of its segment")
		}
		name, desc := rest[:namesz], rest[align4(namesz):align4(namesz)+descsz]
		if typ == goBuildIDNote && string(bytes.TrimRight(name, "\x00")) == "Go" {
			return string(desc), true, nil
		}
		seg = rest[min(align4(namesz)+align4(descsz), uint64(len(rest))):]
	}
	return "", false, nil
}
