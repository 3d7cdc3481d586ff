package enclave

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHostFiles lists a directory with a subdirectory, a link to a file (listed at both
// paths with the target's content) and a link to a directory (not followed), and a given link
// whose target is outside the walked directory. A dangling link in a walk is refused.
func TestHostFiles(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "a"), "a")
	write(filepath.Join(dir, "sub", "b"), "bb")
	write(filepath.Join(other, "c"), "ccc")
	link("a", filepath.Join(dir, "to-a"))
	link("sub", filepath.Join(dir, "to-sub"))
	link(filepath.Join(other, "c"), filepath.Join(other, "to-c"))

	files, links, err := HostFiles([]string{dir, filepath.Join(other, "to-c")})
	if err != nil {
		t.Fatalf("HostFiles: %v", err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(strings.TrimPrefix(f.Path, dir), other)+"="+string(rune('0'+f.Size)))
	}
	want := []string{"/a=1", "/c=3", "/sub/b=2", "/to-a=1", "/to-c=3"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("HostFiles paths %q, want %q", got, want)
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	if byPath[filepath.Join(dir, "to-a")].SHA256 != sha256.Sum256([]byte("a")) {
		t.Error("the link to-a is not listed with its target's digest")
	}
	if len(links) != 2 || links[0].Path != filepath.Join(dir, "to-a") || links[0].Target != filepath.Join(dir, "a") {
		t.Errorf("links %+v; want to-a -> a, then to-c -> c", links)
	}
	m := Manifest{Version: FormatVersion, Argv: []string{"/x"}, Files: files}
	if err := m.Validate(); err != nil {
		t.Errorf("the listed files do not make a valid manifest: %v", err)
	}

	// A link given by name and met again in a walk is listed once.
	if _, links, err := HostFiles([]string{filepath.Join(dir, "to-a"), dir}); err != nil || len(links) != 1 {
		t.Errorf("HostFiles(to-a, dir): links %+v, %v; want to-a once", links, err)
	}
	link("missing", filepath.Join(dir, "dangling"))
	if _, _, err := HostFiles([]string{filepath.Join(dir, "dangling")}); err == nil {
		t.Error("HostFiles of a dangling link given by name: no error")
	}
	if _, _, err := HostFiles([]string{dir}); err == nil || !strings.Contains(err.Error(), "dangling") {
		t.Errorf("HostFiles of a directory with a dangling link = %v; want it refused by name", err)
	}
	if _, _, err := HostFiles([]string{filepath.Join(dir, "none")}); err == nil {
		t.Error("HostFiles of a missing path: no error")
	}
}
