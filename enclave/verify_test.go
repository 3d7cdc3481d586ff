package enclave

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/protect"
)

// writeTree writes files (path → contents) under a new temporary root and
// returns the root and a manifest listing them as trusted files.
func writeTree(t testing.TB, files map[string][]byte) (string, *Manifest) {
	t.Helper()
	root := t.TempDir()
	m := minimalManifest()
	for p, data := range files {
		name := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, File{Path: p, SHA256: sha256.Sum256(data), Size: int64(len(data))})
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return root, m
}

func TestVerifyFiles(t *testing.T) {
	key := bytes.Repeat([]byte{1}, protect.KeySize)
	var secret bytes.Buffer
	if err := protect.Encrypt(&secret, strings.NewReader("s3cret"), key, "/etc/secret", 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string, m *Manifest)
		want  []Mismatch
	}{
		{"all match", func(t *testing.T, root string, m *Manifest) {}, nil},
		{"one worker", func(t *testing.T, root string, m *Manifest) {}, nil},
		{"missing", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "usr/bin/app")))
		}, []Mismatch{{"/usr/bin/app", "a regular file", "missing"}}},
		{"size", func(t *testing.T, root string, m *Manifest) {
			must(t, os.WriteFile(filepath.Join(root, "usr/bin/app"), []byte("app2"), 0o644))
		}, []Mismatch{{"/usr/bin/app", "size 3", "size 4"}}},
		{"content", func(t *testing.T, root string, m *Manifest) {
			must(t, os.WriteFile(filepath.Join(root, "usr/bin/app"), []byte("evl"), 0o644))
		}, []Mismatch{{"/usr/bin/app", "sha256 " + sum("app").String(), "sha256 " + sum("evl").String()}}},
		{"directory", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "usr/bin/app")))
			must(t, os.Mkdir(filepath.Join(root, "usr/bin/app"), 0o755))
		}, []Mismatch{{"/usr/bin/app", "a regular file", "a directory"}}},
		{"named pipe does not block", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "usr/bin/app")))
			must(t, syscall.Mkfifo(filepath.Join(root, "usr/bin/app"), 0o644))
		}, []Mismatch{{"/usr/bin/app", "a regular file", "a named pipe"}}},
		{"symlink inside root", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Rename(filepath.Join(root, "usr/bin/app"), filepath.Join(root, "app.real")))
			must(t, os.Symlink("../../app.real", filepath.Join(root, "usr/bin/app")))
		}, nil},
		{"symlink escaping root", func(t *testing.T, root string, m *Manifest) {
			outside := filepath.Join(t.TempDir(), "app")
			must(t, os.WriteFile(outside, []byte("app"), 0o644))
			must(t, os.Remove(filepath.Join(root, "usr/bin/app")))
			must(t, os.Symlink(outside, filepath.Join(root, "usr/bin/app")))
		}, []Mismatch{{"/usr/bin/app", "a regular file", "unreadable (path escapes from parent)"}}},
		{"path escaping root", func(t *testing.T, root string, m *Manifest) {
			m.Files[0].Path = "/../etc/passwd"
		}, []Mismatch{{"/../etc/passwd", "a regular file", "unreadable (path escapes from parent)"}}},
		{"protected wrong copy", func(t *testing.T, root string, m *Manifest) {
			m.ProtectedFiles[0].SHA256 = sum("older copy")
		}, []Mismatch{{"/etc/secret", "sha256 " + sum("older copy").String() + " (encrypted)", "sha256 " + Digest(sha256.Sum256(secret.Bytes())).String()}}},
		{"protected wrong size", func(t *testing.T, root string, m *Manifest) {
			m.ProtectedFiles[0].Size = 7
		}, []Mismatch{{"/etc/secret", fmt.Sprintf("size %d (encrypted)", secret.Len()+1), fmt.Sprintf("size %d", secret.Len())}}},
		{"protected copy missing", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "cloister/protected/etc/secret")))
		}, []Mismatch{{"/etc/secret", "its encrypted copy at /cloister/protected/etc/secret (a regular file)", "missing"}}},
		{"protected path not a link", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "etc/secret")))
			must(t, os.WriteFile(filepath.Join(root, "etc/secret"), []byte("plain"), 0o644))
		}, []Mismatch{{"/etc/secret", "a symbolic link to " + ProtectedDir + "/etc/secret", "a file of mode -rw-r--r--"}}},
		{"protected path links elsewhere", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "etc/secret")))
			must(t, os.Symlink("/tmp/cloister-protected/etc/secret", filepath.Join(root, "etc/secret")))
		}, []Mismatch{{"/etc/secret", "a symbolic link to " + ProtectedDir + "/etc/secret", `a symbolic link to "/tmp/cloister-protected/etc/secret"`}}},
		{"several, sorted", func(t *testing.T, root string, m *Manifest) {
			must(t, os.Remove(filepath.Join(root, "usr/bin/app")))
			must(t, os.Remove(filepath.Join(root, "etc/app.conf")))
		}, []Mismatch{{"/etc/app.conf", "a regular file", "missing"}, {"/usr/bin/app", "a regular file", "missing"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, m := writeTree(t, map[string][]byte{
				"/usr/bin/app":                   []byte("app"),
				"/etc/app.conf":                  []byte("conf"),
				"/cloister/protected/etc/secret": secret.Bytes(),
			})
			m.Files = slices.DeleteFunc(m.Files, func(f File) bool { return strings.HasPrefix(f.Path, "/cloister/") })
			m.ProtectedFiles = []ProtectedFile{{Path: "/etc/secret", Key: "k", Size: 6,
				SHA256: sha256.Sum256(secret.Bytes()), Version: 1, Mode: 0o644}}
			m.ProtectedDirs = []Directory{{Path: "/etc", Mode: 0o755}}
			m.EncryptedDir, m.PlaintextDir = EncryptedDirDefault, ProtectedDir
			must(t, os.Symlink(ProtectedDir+"/etc/secret", filepath.Join(root, "etc/secret")))
			tc.setup(t, root, m)
			opts := VerifyOptions{}
			if tc.name == "one worker" {
				opts.Workers = 1
			}
			err := m.VerifyFiles(t.Context(), root, opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyFiles = %v, want nil", err)
				}
				return
			}
			fe, ok := errors.AsType[*FilesError](err)
			if !ok || !slices.Equal(fe.Mismatches, tc.want) {
				t.Fatalf("VerifyFiles = %v\nwant mismatches %q", err, tc.want)
			}
		})
	}
}

func TestVerifyFilesErrorCapsList(t *testing.T) {
	m := minimalManifest()
	for i := range 25 {
		m.Files = append(m.Files, File{Path: fmt.Sprintf("/f%02d", i), SHA256: sum("x"), Size: 1})
	}
	err := m.VerifyFiles(t.Context(), t.TempDir(), VerifyOptions{})
	fe, ok := errors.AsType[*FilesError](err)
	if !ok || len(fe.Mismatches) != 25 {
		t.Fatalf("VerifyFiles = %v, want 25 mismatches", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "enclave: 25 trusted files do not match") || strings.Count(msg, ": expected a regular file, found missing") != 20 ||
		!strings.HasSuffix(msg, "and 5 more") || !strings.Contains(msg, "/f19:") || strings.Contains(msg, "/f20:") {
		t.Errorf("message = %q, want the first 20 sorted mismatches and \"and 5 more\"", msg)
	}
}

func TestVerifyFilesCanceled(t *testing.T) {
	root, m := writeTree(t, map[string][]byte{"/a": []byte("a"), "/b": []byte("b")})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.VerifyFiles(ctx, root, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("VerifyFiles with a canceled context = %v, want context.Canceled", err)
	}
	if err := m.VerifyFiles(t.Context(), filepath.Join(root, "nonexistent"), VerifyOptions{}); err == nil ||
		errors.Is(err, context.Canceled) {
		t.Errorf("VerifyFiles of a missing root = %v, want an open error", err)
	}
}

func TestHashFile(t *testing.T) {
	root, _ := writeTree(t, map[string][]byte{"/d/big": bytes.Repeat([]byte("x"), 3<<20+5)})
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, n, err := HashFile(r, "d/big")
	if err != nil || n != 3<<20+5 || d != sha256.Sum256(bytes.Repeat([]byte("x"), 3<<20+5)) {
		t.Errorf("HashFile = %v, %d, %v", d, n, err)
	}
	if _, _, err := HashFile(r, "d"); err == nil || !strings.Contains(err.Error(), "expected a regular file, found a directory") {
		t.Errorf("HashFile(directory) = %v", err)
	}
	if _, _, err := HashFile(r, "../x"); err == nil {
		t.Errorf("HashFile(../x) succeeded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerifyFilesDirectoryHandles covers the directory-handle cache: a
// directory symlink (as in merged-/usr images), a symlink leaving its
// directory upwards but not the root, and more directories than the cache
// holds.
func TestVerifyFilesDirectoryHandles(t *testing.T) {
	files := map[string][]byte{}
	for i := range maxCachedDirs + 100 {
		files[fmt.Sprintf("/usr/lib/d%03d/f", i)] = []byte{byte(i)}
	}
	root, m := writeTree(t, files)
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(t, os.Symlink("../d000/f", filepath.Join(root, "usr/lib/d001/up")))
	m.Files = append(m.Files,
		File{Path: "/lib/d002/f", SHA256: sha256.Sum256([]byte{2}), Size: 1},
		File{Path: "/usr/lib/d001/up", SHA256: sha256.Sum256([]byte{0}), Size: 1},
	)
	if err := m.VerifyFiles(t.Context(), root, VerifyOptions{}); err != nil {
		t.Fatalf("VerifyFiles = %v, want nil", err)
	}
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/d600/f"), []byte{1}, 0o644))
	err := m.VerifyFiles(t.Context(), root, VerifyOptions{})
	if fe, ok := errors.AsType[*FilesError](err); !ok || len(fe.Mismatches) != 1 || fe.Mismatches[0].Path != "/usr/lib/d600/f" {
		t.Errorf("VerifyFiles after changing an uncached directory's file = %v", err)
	}
}
