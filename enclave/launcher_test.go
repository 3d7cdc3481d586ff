package enclave

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReadGoBuildID reads the Go build ID of this test binary, as `go tool buildid` prints
// it, and of a binary without one.
func TestReadGoBuildID(t *testing.T) {
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
	got, err := ReadGoBuildID(f)
	if err != nil || got != want || want == "" {
		t.Errorf("ReadGoBuildID(%s) = %q, %v; want %q", exe, got, err, want)
	}

	l, err := DescribeLauncher(exe)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if l.SHA256 != sha256.Sum256(b) || l.Size != int64(len(b)) || l.GoBuildID != want {
		t.Errorf("DescribeLauncher = %+v; want the binary's hash, size %d and build ID %q", l, len(b), want)
	}

	if id, err := ReadGoBuildID(bytes.NewReader(synthELF(binary.LittleEndian, note{"GNU", 3, []byte("0123456789abcdef0123")}))); err != nil || id != "" {
		t.Errorf("an ELF with only a GNU build ID: %q, %v; want no Go build ID and no error", id, err)
	}
}

// note is one ELF note for synthELF.
type note struct {
	name string
	typ  uint32
	desc []byte
}

// synthELF returns a minimal 64-bit ELF header with one PT_NOTE program header and the
// notes, in byte order bo.
func synthELF(bo interface {
	binary.ByteOrder
	binary.AppendByteOrder
}, notes ...note) []byte {
	var seg []byte
	pad := func(b []byte) []byte { return append(b, make([]byte, (4-len(b)%4)%4)...) }
	for _, n := range notes {
		name := append([]byte(n.name), 0)
		seg = bo.AppendUint32(seg, uint32(len(name)))
		seg = bo.AppendUint32(seg, uint32(len(n.desc)))
		seg = bo.AppendUint32(seg, n.typ)
		seg = append(seg, pad(name)...)
		seg = append(seg, pad(append([]byte(nil), n.desc...))...)
	}
	h := make([]byte, elfHeaderSize64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1
	if bo.String() == binary.BigEndian.String() {
		h[5] = 2
	}
	bo.PutUint64(h[0x20:], elfHeaderSize64)
	bo.PutUint16(h[0x36:], elfPhdrSize64)
	bo.PutUint16(h[0x38:], 1)
	ph := make([]byte, elfPhdrSize64)
	bo.PutUint32(ph, elfPTNote)
	bo.PutUint64(ph[0x08:], elfHeaderSize64+elfPhdrSize64)
	bo.PutUint64(ph[0x20:], uint64(len(seg)))
	return append(append(h, ph...), seg...)
}

// TestReadGoBuildIDRefuses: files that are not 64-bit ELF executables, or whose headers and
// notes are out of bounds, are refused, each saying what was expected.
func TestReadGoBuildIDRefuses(t *testing.T) {
	good := synthELF(binary.BigEndian, note{"GNU", 3, []byte("x")}, note{"Go", goBuildIDNote, []byte("abc/def")})
	if id, err := ReadGoBuildID(bytes.NewReader(good)); err != nil || id != "abc/def" {
		t.Fatalf("big-endian ELF with a Go note: %q, %v; want \"abc/def\"", id, err)
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
		{"huge note segment", set(elfHeaderSize64+0x20, 1<<40, 8), "ELF note segment 0: offset 120, size 1099511627776 out of bounds"},
		{"note past its segment", set(seg+4, 1<<20, 4), "note runs past the end of its segment"},
		{"short note header", set(elfHeaderSize64+0x20, 8, 8), "expected a 12-byte note header, found 8 bytes"},
		{"bad build ID", synthELF(binary.LittleEndian, note{"Go", goBuildIDNote, []byte("a\nb")}), `Go build ID "a\nb": expected base64 characters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ReadGoBuildID(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadGoBuildID = %q, %v; want an error saying %q", id, err, tc.want)
			}
		})
	}
}

// FuzzReadGoBuildID: whatever the bytes, ReadGoBuildID does not panic or read out of bounds,
// and an ID it returns passes the manifest's check.
func FuzzReadGoBuildID(f *testing.F) {
	f.Add(synthELF(binary.LittleEndian, note{"Go", goBuildIDNote, []byte("Nw8oXVYMxiQAjqnvhlho/DfCrn6BAEf2AHp88d-DL/fSM1_mS2-NWAn2NNvCUn/Td1S9vkG8i4sFEjKIx70")}))
	f.Add(synthELF(binary.BigEndian, note{"GNU", 3, []byte("0123456789abcdef0123")}, note{"Go", goBuildIDNote, []byte("a/b")}))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ReadGoBuildID(bytes.NewReader(b))
		if err != nil && id != "" {
			t.Fatalf("ReadGoBuildID = %q with error %v", id, err)
		}
		if why := checkBuildID(id); why != "" {
			t.Fatalf("ReadGoBuildID = %q: %s", id, why)
		}
	})
}
