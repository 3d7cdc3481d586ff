package injector

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cloister-dev/cloister/sgx/sim"
)

// TestSimPlatformFilesSecretVolume: a simulated platform mounted from a Secret, laid out as the
// kubelet writes it (the files in a timestamped directory, "..data" pointing at it, a symbolic
// link per top-level entry), lists the same files as the platform directory itself.
func TestSimPlatformFilesSecretVolume(t *testing.T) {
	src := filepath.Join(t.TempDir(), "sim")
	if _, err := sim.Create(src, sim.Options{}); err != nil {
		t.Fatal(err)
	}
	want, err := SimPlatformFiles(src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(want, "private/pck_key.pem") {
		t.Fatalf("platform files %v; want private/pck_key.pem among them", want)
	}
	mnt := t.TempDir()
	ts := filepath.Join(mnt, "..2026_12_04_07_00_00.000000001")
	if err := os.CopyFS(ts, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(mnt, "..data")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join("..data", e.Name()), filepath.Join(mnt, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	got, err := SimPlatformFiles(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("files of the mounted Secret %v; want %v", got, want)
	}
	if _, err := SimSecretData(mnt); err != nil {
		t.Errorf("SimSecretData of the mounted Secret: %v", err)
	}
}
