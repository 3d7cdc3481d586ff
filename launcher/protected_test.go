package launcher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
)

// protectedLayout is a converted image's layout of protected files at real absolute paths: the
// encrypted copies below enc, the plaintext below plain (a tmpfs), each protected path a link.
type protectedLayout struct {
	m          *enclave.Manifest
	enc, plain string
}

// newProtectedLayout makes the directories of a protectedLayout; plain is on /dev/shm.
func newProtectedLayout(t *testing.T) *protectedLayout {
	t.Helper()
	plain, err := os.MkdirTemp("/dev/shm", "cloister-test-")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(plain) })
	l := &protectedLayout{m: &enclave.Manifest{}, enc: realTempDir(t), plain: plain}
	l.m.EncryptedDir, l.m.PlaintextDir = l.enc, l.plain
	return l
}

// add encrypts plain for path p (an absolute path outside enc and plain) into the layout, links
// p to its plaintext, and lists it with its mode and owner; dirs lists the directories above p
// with their attributes (those not given are recorded 0755 root).
func (l *protectedLayout) add(t *testing.T, key []byte, p string, plain []byte, mode enclave.Mode, uid, gid uint32, dirs map[string]enclave.Directory) {
	t.Helper()
	var ct bytes.Buffer
	if err := protect.Encrypt(&ct, bytes.NewReader(plain), key, p, 1); err != nil {
		t.Fatal(err)
	}
	stored := l.m.EncryptedPath(p)
	mustMkdir(t, filepath.Dir(stored))
	if err := os.WriteFile(stored, ct.Bytes(), 0o444); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, filepath.Dir(p))
	mustSymlink(t, l.m.PlaintextPath(p), p)
	l.m.ProtectedFiles = append(l.m.ProtectedFiles, enclave.ProtectedFile{Path: p, Key: "k", Size: int64(len(plain)),
		SHA256: sha256.Sum256(ct.Bytes()), Version: 1, Mode: mode, UID: uid, GID: gid})
	for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
		if hasDir(l.m, d) {
			continue
		}
		rec, ok := dirs[d]
		if !ok {
			rec = enclave.Directory{Mode: 0o755}
		}
		rec.Path = d
		l.m.ProtectedDirs = append(l.m.ProtectedDirs, rec)
	}
	sortLayout(l.m)
}

func hasDir(m *enclave.Manifest, d string) bool {
	for _, x := range m.ProtectedDirs {
		if x.Path == d {
			return true
		}
	}
	return false
}

func sortLayout(m *enclave.Manifest) {
	slices.SortFunc(m.ProtectedDirs, func(a, b enclave.Directory) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(m.ProtectedFiles, func(a, b enclave.ProtectedFile) int { return strings.Compare(a.Path, b.Path) })
}

// wantAttrs checks p's permission bits (as ls shows them) and owner.
func wantAttrs(t *testing.T, p string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got := fi.Mode() &^ (os.ModeType &^ os.ModeDir); got != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: mode %v owner %d:%d; want %v %d:%d", p, got, st.Uid, st.Gid, mode, uid, gid)
	}
}

// TestUnlockProtectedModesAndRestarts: the plaintext gets each file's and directory's recorded
// mode and owner (setuid and sticky included, a read-only directory filled all the same), and a
// second and third unlock, one over what the first left and one after the tmpfs was wiped, give
// the same result; nothing outside the plaintext directory changes.
func TestUnlockProtectedModesAndRestarts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	key := bytes.Repeat([]byte{7}, 32)
	l := newProtectedLayout(t)
	base := realTempDir(t)
	www := filepath.Join(base, "srv", "www")
	dirs := map[string]enclave.Directory{
		www:                           {Mode: 0o750, UID: 0, GID: 33},
		filepath.Join(www, "private"): {Mode: 0o500, UID: 33, GID: 33},
		filepath.Join(base, "srv"):    {Mode: 0o1777},
	}
	files := []struct {
		path     string
		mode     enclave.Mode
		uid, gid uint32
		want     os.FileMode
	}{
		{filepath.Join(www, "index.html"), 0o644, 0, 0, 0o644},
		{filepath.Join(www, "group.conf"), 0o640, 0, 33, 0o640},
		{filepath.Join(www, "private", "key.pem"), 0o400, 33, 33, 0o400},
		{filepath.Join(www, "tool"), 0o4750, 0, 33, 0o750 | os.ModeSetuid},
	}
	for _, f := range files {
		l.add(t, key, f.path, []byte("content of "+f.path), f.mode, f.uid, f.gid, dirs)
	}
	resp := &api.ActivationResponse{FileKeys: map[string][]byte{"k": key}}
	check := func(run string) {
		t.Helper()
		for _, f := range files {
			if b, err := os.ReadFile(f.path); err != nil || string(b) != "content of "+f.path {
				t.Errorf("%s: %s reads %q, %v", run, f.path, b, err)
			}
			wantAttrs(t, l.m.PlaintextPath(f.path), f.want, f.uid, f.gid)
			if fi, err := os.Lstat(f.path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("%s: %s is no longer the image's link", run, f.path)
			}
		}
		wantAttrs(t, l.m.PlaintextPath(www), 0o750|os.ModeDir, 0, 33)
		wantAttrs(t, l.m.PlaintextPath(filepath.Join(www, "private")), 0o500|os.ModeDir, 33, 33)
		wantAttrs(t, l.m.PlaintextPath(filepath.Join(base, "srv")), 0o777|os.ModeDir|os.ModeSticky, 0, 0)
		wantAttrs(t, l.plain, 0o755|os.ModeDir, 0, 0)
	}
	if err := testUnlock(l.m, resp); err != nil {
		t.Fatal(err)
	}
	check("first start")

	// A restart with the same /dev/shm (a Kubernetes container restart): what the first start
	// left, and a stray file, are replaced.
	noErr(t, os.WriteFile(filepath.Join(l.plain, "stray"), []byte("x"), 0o600))
	if err := testUnlock(l.m, resp); err != nil {
		t.Fatalf("second start over the first one's plaintext: %v", err)
	}
	check("second start")
	if _, err := os.Lstat(filepath.Join(l.plain, "stray")); !os.IsNotExist(err) {
		t.Errorf("a file left in %s survived the restart", l.plain)
	}

	// A restart with a new /dev/shm (podman restart).
	noErr(t, os.RemoveAll(l.plain))
	if err := testUnlock(l.m, resp); err != nil {
		t.Fatalf("third start, tmpfs wiped: %v", err)
	}
	check("third start")
	if entries, _ := os.ReadDir(l.enc); len(entries) == 0 {
		t.Errorf("the encrypted copies are gone")
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnlockProtectedRefusals: an old copy, a wrong key, a missing key, a changed link and a
// linked encrypted copy are each refused, and no plaintext is left behind for a refused file.
func TestUnlockProtectedRefusals(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse)
		want  string
	}{
		{"old copy", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			// An older copy, encrypted with the same key and version, decrypts fine: only the
			// ciphertext hash in the signed manifest tells it apart.
			var ct bytes.Buffer
			noErr(t, protect.Encrypt(&ct, strings.NewReader("a revoked old value"), key, p, 1))
			noErr(t, os.WriteFile(l.m.EncryptedPath(p), ct.Bytes(), 0o444))
			l.m.ProtectedFiles[0].Size = int64(len("a revoked old value"))
		}, "an old or altered copy swapped in"},
		{"wrong key", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			resp.FileKeys["k"] = bytes.Repeat([]byte{8}, 32)
		}, "protected file"},
		{"no key", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			delete(resp.FileKeys, "k")
		}, `the Coordinator delivered no key "k"`},
		{"link changed", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			noErr(t, os.Remove(p))
			mustSymlink(t, "/etc/passwd", p)
		}, `found one to "/etc/passwd"`},
		{"link replaced by a file", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			noErr(t, os.Remove(p))
			noErr(t, os.WriteFile(p, []byte("planted"), 0o644))
		}, "expected a symbolic link to " + "PLAIN"},
		{"encrypted copy is a link", func(t *testing.T, l *protectedLayout, p string, resp *api.ActivationResponse) {
			stored := l.m.EncryptedPath(p)
			real := filepath.Join(realTempDir(t), "copy")
			noErr(t, os.Rename(stored, real))
			mustSymlink(t, real, stored)
		}, "is a symbolic link; refusing to follow or replace it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newProtectedLayout(t)
			p := filepath.Join(realTempDir(t), "app", "secret.txt")
			l.add(t, key, p, []byte("the current secret"), 0o600, 0, 0, nil)
			resp := &api.ActivationResponse{FileKeys: map[string][]byte{"k": key}}
			tc.setup(t, l, p, resp)
			want := strings.ReplaceAll(tc.want, "PLAIN", l.m.PlaintextPath(p))
			err := testUnlock(l.m, resp)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("unlockProtected = %v; want an error with %q", err, want)
			}
			filepath.WalkDir(l.plain, func(q string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("plaintext %s was left behind", q)
				}
				return err
			})
		})
	}
}

// TestUnlockProtectedRefusesDiskBackedDir: plaintext is never written to a directory that is
// not a tmpfs.
func TestUnlockProtectedRefusesDiskBackedDir(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	l := newProtectedLayout(t)
	p := filepath.Join(realTempDir(t), "secret.txt")
	l.add(t, key, p, []byte("s"), 0o600, 0, 0, nil)
	l.m.PlaintextDir = realTempDir(t)
	err := testUnlock(l.m, &api.ActivationResponse{FileKeys: map[string][]byte{"k": key}})
	if err == nil || !strings.Contains(err.Error(), "is not memory-backed") {
		t.Skipf("unlockProtected = %v (the temporary directory may be a tmpfs here)", err)
	}
}

// TestPrepareRestarts runs a whole launch of an image with protected files three times on the
// same file system, as podman restart does: again over what the first left in the tmpfs, and
// once more after the tmpfs was wiped. Each activates, verifies the trusted files and the
// protected files' links and encrypted copies, and unlocks the plaintext again.
func TestPrepareRestarts(t *testing.T) {
	tc := startTestCoordinator(t)
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package": "p", "file_keys": []string{"fk"}, "env": map[string]string{"FK": "{{.Secrets.fk.Hex}}"},
		}},
		"secrets": map[string]any{"fk": map[string]any{"type": "symmetric-key", "size": 256}},
	})
	cfg := Config{Coordinator: tc.mesh, Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: tc.platform.Dir()}

	// Learn the file key the Coordinator generated, with an image that protects nothing.
	cfg.EnclaveManifest, _ = writeApp(t, t.TempDir(), nil)
	plan, err := Prepare(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	for _, kv := range plan.Env {
		if v, ok := strings.CutPrefix(kv, "FK="); ok {
			key, err = hex.DecodeString(v)
			noErr(t, err)
		}
	}

	l := newProtectedLayout(t)
	p := filepath.Join(realTempDir(t), "www", "index.html")
	l.add(t, key, p, []byte("<h1>protected</h1>"), 0o644, 0, 33, nil)
	cfg.EnclaveManifest, _ = writeApp(t, t.TempDir(), func(m *enclave.Manifest) {
		m.ProtectedFiles, m.ProtectedDirs = l.m.ProtectedFiles, l.m.ProtectedDirs
		m.ProtectedFiles[0].Key = "fk"
		m.EncryptedDir, m.PlaintextDir = l.m.EncryptedDir, l.m.PlaintextDir
	})
	for i, before := range []func(){
		func() {},
		func() {}, // the first start's plaintext is still there
		func() { noErr(t, os.RemoveAll(l.plain)) },
	} {
		before()
		if _, err := Prepare(t.Context(), cfg); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != "<h1>protected</h1>" {
			t.Fatalf("start %d: %s reads %q, %v", i+1, p, b, err)
		}
	}
}

// testUnlock opens the plaintext directory, as Prepare does before it activates, and unlocks.
func testUnlock(m *enclave.Manifest, resp *api.ActivationResponse) error {
	plain, err := openPlaintextDir(m.PlaintextDir)
	if err != nil {
		return fmt.Errorf("protected files: %w", err)
	}
	defer plain.Close()
	return unlockProtected(plain, m, resp)
}
