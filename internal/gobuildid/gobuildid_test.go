package gobuildid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRead reads the Go build ID of this test binary, as `go tool buildid` prints
// it, and of a binary without one.
func TestRead(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "buildid", exe).Output()
	if err != nil {
		t.Skipf("go tool buildid: %v", err)
	}
	want := strings.TrimSpace(string(out))
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Read(f)
	if err != nil || got != want || want == "" {
		t.Errorf("Read(%s) = %q, %v; want %q", exe, got, err, want)
	}

	if id, err := Read(bytes.NewReader(synthELF(binary.LittleEndian, note{"GNU", 3, []byte("0123456789abcdef0123")}))); err != nil || id != "" {
		t.Errorf("an ELF with only a GNU build ID: %q, %v; want no Go build ID and no error", id, err)
	}
}

// note is one ELF note for synthELF.
type note struct {
	name string
	typ  uint32
	desc []byte
}

// byteOrder is what synthELF needs of a byte order.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// synthELF returns a minimal 64-bit ELF header with one PT_NOTE program header holding the
// notes (4-byte aligned), in byte order bo.
func synthELF(bo byteOrder, notes ...note) []byte {
	return synthSegments(bo, segment{4, notes, nil})
}

// segment is one PT_NOTE segment for synthSegments: notes aligned to align, or raw bytes.
type segment struct {
	align uint64
	notes []note
	raw   []byte
}

// synthSegments returns a minimal 64-bit ELF header with a PT_NOTE program header for each
// segment, the segments following the headers, each at a multiple of 8.
func synthSegments(bo byteOrder, segs ...segment) []byte {
	h := make([]byte, elfHeaderSize64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1
	if bo.String() == binary.BigEndian.String() {
		h[5] = 2
	}
	bo.PutUint64(h[0x20:], elfHeaderSize64)
	bo.PutUint16(h[0x36:], elfPhdrSize64)
	bo.PutUint16(h[0x38:], uint16(len(segs)))
	var phdrs, data []byte
	at := uint64(elfHeaderSize64 + len(segs)*elfPhdrSize64)
	for _, sg := range segs {
		b := sg.raw
		for _, n := range sg.notes {
			name := append([]byte(n.name), 0)
			b = bo.AppendUint32(b, uint32(len(name)))
			b = bo.AppendUint32(b, uint32(len(n.desc)))
			b = bo.AppendUint32(b, n.typ)
			b = append(b, name...)
			b = append(b, make([]byte, (sg.align-uint64(len(b))%sg.align)%sg.align)...)
			b = append(b, n.desc...)
			b = append(b, make([]byte, (sg.align-uint64(len(b))%sg.align)%sg.align)...)
		}
		ph := make([]byte, elfPhdrSize64)
		bo.PutUint32(ph, elfPTNote)
		bo.PutUint64(ph[0x08:], at+uint64(len(data)))
		bo.PutUint64(ph[0x20:], uint64(len(b)))
		bo.PutUint64(ph[0x30:], sg.align)
		phdrs, data = append(phdrs, ph...), append(data, b...)
		data = append(data, make([]byte, (8-len(data)%8)%8)...)
	}
	return append(append(h, phdrs...), data...)
}

// TestReadRefuses: files that are not 64-bit ELF executables, or whose headers and
// notes are out of bounds, are refused, each saying what was expected; a malformed note
// segment is skipped for a later one that holds the ID.
func TestReadRefuses(t *testing.T) {
	good := synthELF(binary.BigEndian, note{"GNU", 3, []byte("x")}, note{"Go", goBuildIDNote, []byte("abc/def")})
	if id, err := Read(bytes.NewReader(good)); err != nil || id != "abc/def" {
		t.Fatalf("big-endian ELF with a Go note: %q, %v; want \"abc/def\"", id, err)
	}
	aligned8 := synthSegments(binary.LittleEndian, segment{8, []note{{"GNU", 5, []byte("0123456789ab")}, {"Go", goBuildIDNote, []byte("a/b")}}, nil})
	if id, err := Read(bytes.NewReader(aligned8)); err != nil || id != "a/b" {
		t.Errorf("notes aligned to 8: %q, %v; want \"a/b\"", id, err)
	}
	second := synthSegments(binary.LittleEndian, segment{4, nil, []byte{1, 2, 3}}, segment{4, []note{{"Go", goBuildIDNote, []byte("c/d")}}, nil})
	if id, err := Read(bytes.NewReader(second)); err != nil || id != "c/d" {
		t.Errorf("a malformed note segment before the Go note: %q, %v; want \"c/d\"", id, err)
	}
	set := func(off int, v uint64, size int) []byte {
		b := bytes.Clone(good)
		switch size {
		case 2:
			binary.BigEndian.PutUint16(b[off:], uint16(v))
		case 4:
			binary.BigEndian.PutUint32(b[off:], uint32(v))
		default:
			binary.BigEndian.PutUint64(b[off:], v)
		}
		return b
	}
	class32 := bytes.Clone(good)
	class32[4] = 1
	seg := elfHeaderSize64 + elfPhdrSize64
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "read ELF header: expected 64 bytes"},
		{"not ELF", []byte(strings.Repeat("#!/bin/sh\n", 10)), `expected an ELF executable, found the bytes "#!/b"`},
		{"32-bit", class32, "expected a 64-bit ELF executable, found ELF class 1"},
		{"too many headers", set(0x38, 1000, 2), "ELF program headers: expected at most 64, found 1000"},
		{"header size", set(0x36, 32, 2), "ELF program header size: expected 56, found 32"},
		{"headers past the end", set(0x20, 1<<20, 8), "read ELF program headers"},
		{"headers far out", set(0x20, 1<<62, 8), "ELF program header offset 4611686018427387904 is out of bounds"},
		{"huge note segment", set(elfHeaderSize64+0x20, 1<<40, 8), "ELF note segment 0: offset 120, size 1099511627776 out of bounds"},
		{"note segment far out", set(elfHeaderSize64+0x08, 1<<63, 8), "ELF note segment 0: offset 9223372036854775808"},
		{"note segment past the end", set(elfHeaderSize64+0x08, 1<<20, 8), "ELF note segment 0: EOF"},
		{"note past its segment", set(seg+4, 1<<20, 4), "note at 0 runs past the end of its segment"},
		{"short note header", set(elfHeaderSize64+0x20, 8, 8), "expected a 12-byte note header at 0, found 8 bytes"},
		{"foreign build ID", synthELF(binary.LittleEndian, note{"Go", goBuildIDNote, []byte("a\nb")}), `build ID note "a\nb": expected base64url characters and slashes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := Read(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %q, %v; want an error saying %q", id, err, tc.want)
			}
		})
	}
	if _, err := Read(bytes.NewReader(synthELF(binary.LittleEndian, note{"Go", goBuildIDNote, []byte("v1.2")}))); !errors.Is(err, ErrForeign) {
		t.Errorf("a pinned build ID: %v; want ErrForeign", err)
	}
}

// FuzzRead: whatever the bytes, Read does not panic or read out of bounds,
// and an ID it returns passes the manifest's check.
func FuzzRead(f *testing.F) {
	f.Add(synthELF(binary.LittleEndian, note{"Go", goBuildIDNote, []byte("Nw8oXVYMxiQAjqnvhlho/DfCrn6BAEf2AHp88d-DL/fSM1_mS2-NWAn2NNvCUn/Td1S9vkG8i4sFEjKIx70")}))
	f.Add(synthELF(binary.BigEndian, note{"GNU", 3, []byte("0123456789abcdef0123")}, note{"Go", goBuildIDNote, []byte("a/b")}))
	f.Add(synthSegments(binary.LittleEndian, segment{8, []note{{"GNU", 5, []byte("0123456789ab")}, {"Go", goBuildIDNote, []byte("a/b")}}, nil}))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := Read(bytes.NewReader(b))
		if err != nil && id != "" {
			t.Fatalf("Read = %q with error %v", id, err)
		}
		if why := Check(id); why != "" {
			t.Fatalf("Read = %q: %s", id, why)
		}
	})
}
