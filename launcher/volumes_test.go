package launcher

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
)

// seedTree writes the image content of a seeded volume: a data directory as initdb leaves it.
func seedTree(t *testing.T, root bool) string {
	t.Helper()
	seed := filepath.Join(realTempDir(t), "seed")
	mustMkdir(t, filepath.Join(seed, "base", "1"))
	mustMkdir(t, filepath.Join(seed, "empty"))
	noErr(t, os.WriteFile(filepath.Join(seed, "PG_VERSION"), []byte("15\n"), 0o600))
	noErr(t, os.WriteFile(filepath.Join(seed, "base", "1", "112"), bytes.Repeat([]byte("x"), 8192), 0o640))
	mustSymlink(t, "/etc/postgresql/15/main/postgresql.conf", filepath.Join(seed, "postgresql.conf"))
	noErr(t, os.Chmod(filepath.Join(seed, "base"), 0o700))
	noErr(t, os.Chmod(filepath.Join(seed, "empty"), 0o750|os.ModeSetgid))
	if root {
		for _, p := range []string{"PG_VERSION", "base", "base/1", "base/1/112", "empty"} {
			noErr(t, os.Lchown(filepath.Join(seed, p), 104, 104))
		}
		noErr(t, os.Lchown(filepath.Join(seed, "postgresql.conf"), 104, 103))
	}
	return seed
}

// A seeded volume is copied from the image once, with modes, owners and links, and is the
// application's from then on; a seeding cut short is done again; anything but files,
// directories and links is refused.
func TestPrepareVolumeSeeds(t *testing.T) {
	root := os.Geteuid() == 0
	seed := seedTree(t, root)
	vol := filepath.Join(realTempDir(t), "var", "lib", "postgresql", "data")
	v := enclave.Volume{Path: vol, Key: "pgdata", Seed: true, Mode: 0o700, UID: 104, GID: 104}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	noErr(t, prepareVolume(v, seed, root, log))
	owner := func(uid, gid uint32) (uint32, uint32) {
		if root {
			return uid, gid
		}
		return uint32(os.Getuid()), uint32(os.Getgid())
	}
	u, g := owner(104, 104)
	wantAttrs(t, vol, 0o700|os.ModeDir, u, g)
	wantAttrs(t, filepath.Join(vol, "PG_VERSION"), 0o600, u, g)
	wantAttrs(t, filepath.Join(vol, "base"), 0o700|os.ModeDir, u, g)
	wantAttrs(t, filepath.Join(vol, "base", "1", "112"), 0o640, u, g)
	wantAttrs(t, filepath.Join(vol, "empty"), 0o750|os.ModeDir|os.ModeSetgid, u, g)
	if got, err := os.Readlink(filepath.Join(vol, "postgresql.conf")); err != nil || got != "/etc/postgresql/15/main/postgresql.conf" {
		t.Errorf("postgresql.conf links to %q (%v); want the image's link", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "base", "1", "112")); err != nil || len(b) != 8192 {
		t.Errorf("base/1/112: %d bytes, %v; want 8192", len(b), err)
	}
	if _, err := os.Lstat(filepath.Join(vol, seedMarker)); !os.IsNotExist(err) {
		t.Errorf("the seeding marker is still there (%v)", err)
	}
	want := "seeded encrypted volume " + vol + " from the image (2 files, 8195 bytes)"
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log:\n%s\nwant a line with %q", logs.String(), want)
	}

	// The next start finds the application's data and leaves it.
	noErr(t, os.WriteFile(filepath.Join(vol, "PG_VERSION"), []byte("written by the app"), 0o600))
	noErr(t, prepareVolume(v, seed, root, log))
	if b, _ := os.ReadFile(filepath.Join(vol, "PG_VERSION")); string(b) != "written by the app" {
		t.Errorf("a second start changed the application's data: PG_VERSION = %q", b)
	}

	// A seeding cut short: emptied and seeded again.
	noErr(t, os.WriteFile(filepath.Join(vol, seedMarker), nil, 0o600))
	noErr(t, prepareVolume(v, seed, root, log))
	if b, _ := os.ReadFile(filepath.Join(vol, "PG_VERSION")); string(b) != "15\n" {
		t.Errorf("after an interrupted seeding PG_VERSION = %q; want the image's", b)
	}
	if _, err := os.Lstat(filepath.Join(vol, seedMarker)); !os.IsNotExist(err) {
		t.Errorf("the seeding marker is still there (%v)", err)
	}

	// A named pipe in the seed content is refused, and the marker stays for the next start.
	noErr(t, syscall.Mkfifo(filepath.Join(seed, "fifo"), 0o600))
	vol2 := filepath.Join(realTempDir(t), "data")
	err := prepareVolume(enclave.Volume{Path: vol2, Key: "k", Seed: true, Mode: 0o700}, seed, root, log)
	if err == nil || !strings.Contains(err.Error(), "expected regular files, directories and symbolic links in the seed content; found a named pipe") {
		t.Errorf("seeding a named pipe = %v; want a refusal naming it", err)
	}
	if _, err := os.Lstat(filepath.Join(vol2, seedMarker)); err != nil {
		t.Errorf("a failed seeding left no marker: %v", err)
	}
}

// An empty volume that is not seeded gets its recorded owner and mode (a runtime creates it
// root-owned); one with data keeps its own.
func TestPrepareVolumeEmpty(t *testing.T) {
	requireRoot(t)
	vol := filepath.Join(realTempDir(t), "state")
	log := slog.New(slog.DiscardHandler)
	v := enclave.Volume{Path: vol, Key: "k", Mode: 0o750, UID: 65534, GID: 65534}
	noErr(t, prepareVolume(v, "/nonexistent", true, log))
	wantAttrs(t, vol, 0o750|os.ModeDir, 65534, 65534)
	noErr(t, os.Chmod(vol, 0o700))
	noErr(t, os.WriteFile(filepath.Join(vol, "data"), nil, 0o600))
	noErr(t, prepareVolume(v, "/nonexistent", true, log))
	wantAttrs(t, vol, 0o700|os.ModeDir, 65534, 65534)
}

// Every volume's key must come with the activation; in simulation each volume is said, loudly,
// to be plaintext.
func TestVolumeKeysAndSimulationWarning(t *testing.T) {
	m := &enclave.Manifest{Volumes: []enclave.Volume{
		{Path: filepath.Join(realTempDir(t), "a"), Key: "ka", Mode: 0o755},
		{Path: filepath.Join(realTempDir(t), "b"), Key: "kb", Mode: 0o755},
	}}
	err := checkVolumeKeys(m, &api.ActivationResponse{FileKeys: map[string][]byte{"ka": make([]byte, 32)}})
	want := "encrypted volume " + m.Volumes[1].Path + `: the Coordinator delivered no key "kb"; list it in the workload's file_keys`
	if err == nil || err.Error() != want {
		t.Errorf("checkVolumeKeys = %v\nwant %s", err, want)
	}
	var logs bytes.Buffer
	noErr(t, prepareVolumes(m, true, slog.New(slog.NewTextHandler(&logs, nil))))
	for _, v := range m.Volumes {
		want := "level=WARN msg=\"SIMULATION: encrypted volume " + v.Path + " is NOT encrypted: its data is written to the host in plaintext (on SGX hardware Gramine encrypts it)\""
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log:\n%s\nwant %s", logs.String(), want)
		}
		if fi, err := os.Stat(v.Path); err != nil || !fi.IsDir() {
			t.Errorf("volume %s not created: %v", v.Path, err)
		}
	}
}
