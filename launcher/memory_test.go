package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
)

// Too little memory-backed storage is refused with the numbers and the fix; enough passes.
func TestCheckMemory(t *testing.T) {
	dir := testShmDir(t)
	noErr(t, os.Mkdir(filepath.Join(dir, "p"), 0o755))
	noErr(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	plain, store := must(os.OpenRoot(filepath.Join(dir, "p"))), must(os.OpenRoot(filepath.Join(dir, "d")))
	defer plain.Close()
	defer store.Close()
	var fs syscall.Statfs_t
	noErr(t, syscall.Statfs(dir, &fs))
	free := int64(fs.Bavail) * fs.Bsize

	if err := checkMemory([]memoryNeed{{plain, 4096}, {store, deliveredHeadroom}}, true); err != nil {
		t.Errorf("checkMemory with room = %v", err)
	}
	// Together, on one file system, they need more than it has, though each would fit.
	half := free/2 + 1<<20
	err := checkMemory([]memoryNeed{{plain, half}, {store, half}}, true)
	prefix := fmt.Sprintf("protected files need %s of memory-backed storage in ", mib(2*half))
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "free (") ||
		!strings.Contains(err.Error(), "): give the container more (") {
		t.Errorf("checkMemory = %v\nwant %s… free (… in all): give the container more (…)", err, prefix)
	}
	if err := checkMemory([]memoryNeed{{store, free + 1}}, false); err == nil || !strings.HasPrefix(err.Error(), "delivered files need ") {
		t.Errorf("checkMemory = %v; want delivered files named", err)
	}
}

// The message of the case: a 100 MiB protected file, podman's default 64 MiB /dev/shm.
func TestMemoryMessage(t *testing.T) {
	if got, want := mib(101<<20), "101.0 MiB"; got != want {
		t.Errorf("mib = %q, want %q", got, want)
	}
	if got := mountPoint("/dev/shm/cloister-protected", devOf(t, "/dev/shm")); got != "/dev/shm" {
		t.Errorf("mountPoint = %q, want /dev/shm", got)
	}
}

func devOf(t *testing.T, p string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Skip(err)
	}
	return st.Dev
}

// Memory-backed storage is checked before the launch activates: with none, Prepare fails
// without dialling the Coordinator (here, nothing listens at its address).
func TestPrepareChecksMemoryBeforeActivation(t *testing.T) {
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	tc := startTestCoordinator(t)
	cfg := Config{Coordinator: "127.0.0.1:1", Workload: "app", Instance: "app-1", TEE: TEESimulation,
		SimDir: tc.platform.Dir(), EnclaveManifest: path, deliveredDir: filepath.Join(diskTempDir(t), "delivered")}
	_, err := Prepare(t.Context(), cfg)
	want := "delivered files: " + cfg.deliveredDir + " is not memory-backed"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Prepare = %v\nwant %s… (before any activation)", err, want)
	}
}

// Refusing a start on an empty tmpfs that is too small, the launcher suggests the size the
// converter printed for the same image (both are enclave.ShmSizeMiB): the protected files'
// plaintext and the delivered files' share, plus the application's 64 MiB.
func TestMemorySuggestionMatchesConverter(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(diskTempDir(t), "small")
	mustMkdir(t, dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount a tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	m := &enclave.Manifest{ProtectedFiles: []enclave.ProtectedFile{{Path: "/srv/blob", Size: 10 << 20}},
		ProtectedDirs: []enclave.Directory{{Path: "/srv"}}}
	noErr(t, os.Mkdir(filepath.Join(dir, "p"), 0o755))
	noErr(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	plain, store := must(os.OpenRoot(filepath.Join(dir, "p"))), must(os.OpenRoot(filepath.Join(dir, "d")))
	defer plain.Close()
	defer store.Close()
	err := checkMemory([]memoryNeed{{plain, m.PlaintextBytes()}, {store, deliveredHeadroom}}, true)
	// What `cloister image convert` prints for this image: image.ShmSizeMiB(PlaintextBytes).
	converter := enclave.ShmSizeMiB(m.PlaintextBytes() + enclave.DeliveredBytes)
	if converter != 76 {
		t.Fatalf("the converter's suggestion for 10 MiB and a directory = %d MiB, want 76", converter)
	}
	want := fmt.Sprintf("podman/docker run --tmpfs %s:size=%dm", dir, converter)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkMemory on an empty 4 MiB tmpfs = %v\nwant the converter's size: %s", err, want)
	}
}
