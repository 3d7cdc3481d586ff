//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// realTempDir is t.TempDir() without symbolic links in its path (macOS's /var is one), since
// OpenDir refuses them.
func realTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// assertEmpty fails t if dir holds anything: nothing may be written through a refused link.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was written outside the target directory", filepath.Join(dir, e.Name()))
	}
}

// TestOpenDirRefusesLinks plants symbolic links where the directories of a target path should
// be, with relative and absolute targets, at the top and at the end of the path, and checks that
// nothing is created where they point and that the error names the link.
func TestOpenDirRefusesLinks(t *testing.T) {
	for _, tc := range []struct {
		name string
		// plant makes links below base, which is empty, pointing into outside, which is empty too,
		// and returns the directory to open and the link the error must name.
		plant func(t *testing.T, base, outside string) (dir, link string)
	}{
		{"parent links to an absolute path", func(t *testing.T, base, outside string) (string, string) {
			mustSymlink(t, outside, filepath.Join(base, "srv"))
			return filepath.Join(base, "srv", "webfiles"), filepath.Join(base, "srv")
		}},
		{"parent links to a relative path", func(t *testing.T, base, outside string) (string, string) {
			rel, err := filepath.Rel(base, outside)
			if err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, rel, filepath.Join(base, "srv"))
			return filepath.Join(base, "srv", "webfiles", "deeper"), filepath.Join(base, "srv")
		}},
		{"last directory links outside", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv"))
			mustSymlink(t, outside, filepath.Join(base, "srv", "webfiles"))
			return filepath.Join(base, "srv", "webfiles"), filepath.Join(base, "srv", "webfiles")
		}},
		{"last directory links to a sibling inside", func(t *testing.T, base, outside string) (string, string) {
			mustMkdir(t, filepath.Join(base, "srv", "real"))
			mustSymlink(t, "real", filepath.Join(base, "srv", "webfiles"))
			return filepath.Join(base, "srv", "webfiles"), filepath.Join(base, "srv", "webfiles")
		}},
		{"dangling link", func(t *testing.T, base, outside string) (string, string) {
			mustSymlink(t, filepath.Join(outside, "missing"), filepath.Join(base, "srv"))
			return filepath.Join(base, "srv", "webfiles"), filepath.Join(base, "srv")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, outside := realTempDir(t), realTempDir(t)
			dir, link := tc.plant(t, base, outside)
			for _, mkdir := range []os.FileMode{0, 0o755} {
				r, err := OpenDir(dir, mkdir)
				if err == nil {
					r.Close()
					t.Fatalf("OpenDir(%s, %v) through the link %s succeeded", dir, mkdir, link)
				}
				want := link + " is a symbolic link; refusing to write through it"
				if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), want) {
					t.Errorf("OpenDir(%s, %v) = %v; want an error wrapping ErrSymlink saying %q", dir, mkdir, err, want)
				}
			}
			assertEmpty(t, outside)
		})
	}
}

// TestCreateInRefusesLinkOrDirectory: the file itself may be neither a link (whose target
// would not be replaced, but which the caller did not mean) nor a directory.
func TestCreateInRefusesLinkOrDirectory(t *testing.T) {
	base, outside := realTempDir(t), realTempDir(t)
	mustSymlink(t, filepath.Join(outside, "key.pem"), filepath.Join(base, "key.pem"))
	mustMkdir(t, filepath.Join(base, "dir.pem"))
	mustSymlink(t, outside, filepath.Join(base, "outdir"))
	r, err := OpenDir(base, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, want := range map[string]string{
		"key.pem": filepath.Join(base, "key.pem") + " is a symbolic link; refusing to write through it",
		"outdir":  filepath.Join(base, "outdir") + " is a symbolic link; refusing to write through it",
		"dir.pem": filepath.Join(base, "dir.pem") + ": expected a regular file or nothing, found a directory",
		"a/b":     `expected a file name, found "a/b"`,
		"..":      `expected a file name, found ".."`,
	} {
		err := WriteIn(r, name, []byte("secret"), 0o600, -1, -1)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("WriteIn(%q) = %v; want an error saying %q", name, err, want)
		}
	}
	assertEmpty(t, outside)
	entries, _ := os.ReadDir(base)
	if len(entries) != 3 {
		t.Errorf("%s holds %d entries after refusals, want the 3 planted (no temporary files left)", base, len(entries))
	}
}

// TestWriteInNested: a nested path is created, each new directory 0755, the file gets exactly
// its permissions and owner and replaces the old content, and no temporary file is left.
func TestWriteInNested(t *testing.T) {
	base := realTempDir(t)
	old := syscall.Umask(0o077) // the umask narrows new directories, never the file
	defer syscall.Umask(old)
	dir := filepath.Join(base, "etc", "app", "tls")
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 1234, 5678
	}
	for _, content := range []string{"first", "second, longer"} {
		r, err := OpenDir(dir, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name() != dir {
			t.Errorf("root name %q, want %q", r.Name(), dir)
		}
		err = WriteIn(r, "key.pem", []byte(content), 0o640, uid, gid)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "key.pem")
		if b, err := os.ReadFile(p); err != nil || string(b) != content {
			t.Fatalf("%s = %q, %v; want %q", p, b, err, content)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != 0o640 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: mode %v owner %d:%d; want -rw-r----- %d:%d", p, fi.Mode(), st.Uid, st.Gid, uid, gid)
		}
	}
	for _, d := range []string{"etc", "etc/app", "etc/app/tls"} {
		fi, err := os.Stat(filepath.Join(base, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory 0755 less the umask 077", d, fi.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only key.pem", dir, len(entries))
	}
	if _, err := OpenDir(filepath.Join(base, "missing", "dir"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenDir of a missing directory without mkdir = %v; want ErrNotExist", err)
	}
	if _, err := OpenDir(filepath.Join(dir, "key.pem"), 0); err == nil || !strings.Contains(err.Error(), "expected a directory, found a regular file") {
		t.Errorf("OpenDir of a file = %v", err)
	}
	if _, err := OpenDir("relative/dir", 0); err == nil {
		t.Errorf("OpenDir of a relative path succeeded")
	}
}

// TestPendingFileCleanup: an abandoned pending file leaves the target and no temporary file.
func TestPendingFileCleanup(t *testing.T) {
	base := realTempDir(t)
	if err := os.WriteFile(filepath.Join(base, "f"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenDir(base, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := CreateIn(r, "f", 0o600, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if err := f.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Errorf("Commit after Cleanup succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(base, "f")); string(b) != "old" {
		t.Errorf("target = %q after Cleanup, want old", b)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 1 {
		t.Errorf("%d entries left, want 1", len(entries))
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
