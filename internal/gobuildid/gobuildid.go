// Package gobuildid reads the Go build ID of an ELF executable from its program headers, a
// few kilobytes, as the launcher does at every start in simulation to check that it is the
// binary its enclave manifest records. It uses no compression code (debug/elf would link it
// into the launcher).
package gobuildid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBuildID bounds a Go build ID in bytes; the go command writes four base64 hashes
// separated by slashes, 83 bytes.
const maxBuildID = 256

// Check says why id is not a Go build ID as the go command writes them (base64url
// hashes separated by slashes), or "".
func Check(id string) string {
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

// ErrForeign marks a Go build ID note whose text is not what the go command writes
// (base64url hashes and slashes), such as one set with -ldflags=-buildid: [Read]
// returns it, and a converter records no ID for such a launcher.
var ErrForeign = errors.New("not a build ID as the go command writes them")

// ELF constants for reading a Go build ID note; see the ELF specification's program header
// and note sections, and cmd/link, which writes the note.
const (
	elfHeaderSize64 = 64
	elfPhdrSize64   = 56
	elfPTNote       = 4
	goBuildIDNote   = 4 // the note type the Go linker gives its build ID, under the name "Go"
	maxPhdrs        = 64
	maxNoteSegment  = 64 << 10
	maxOffset       = 1 << 30 // of the program headers and note segments
)

// Read returns the Go build ID of the 64-bit ELF executable r: the description of
// the note named "Go" of type 4 in a PT_NOTE segment, as the Go linker writes it (and
// `go tool buildid` prints it). It reads the ELF header, the program headers and the note
// segments only, a few kilobytes, not the whole file. An executable without such a note has
// the ID "" and no error. A file that is not a 64-bit ELF executable, or whose program headers
// are out of bounds, is an error; so is a Go note whose text is not base64url and slashes (an
// ID pinned with -ldflags=-buildid). A malformed note segment is skipped, and is the error
// only if no other segment holds the Go note. It does not use debug/elf, which would link
// compression code into the launcher.
func Read(r io.ReaderAt) (string, error) {
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
	if phoff > maxOffset {
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
			if why := Check(id); why != "" {
				return "", fmt.Errorf("build ID note %q: %s: %w", id, why, ErrForeign)
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
	if size > maxNoteSegment || off > maxOffset {
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
