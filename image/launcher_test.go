package image

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDescribeLauncher records cloister-launch with the build ID `go tool buildid` prints; a
// launcher whose ID was pinned at build time (-ldflags=-buildid), so that it is not the
// toolchain's content hash, without one; and refuses what is not a launcher that knows the
// record.
func TestDescribeLauncher(t *testing.T) {
	bin := testLauncher()
	l, err := DescribeLauncher(bin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "buildid", bin).Output()
	if err != nil {
		t.Fatalf("go tool buildid: %v", err)
	}
	if want := strings.TrimSpace(string(out)); l.SHA256 != sha256.Sum256(b) || l.Size != int64(len(b)) || l.GoBuildID != want {
		t.Errorf("DescribeLauncher = %+v; want size %d and build ID %q", l, len(b), want)
	}

	if testing.Short() {
		t.Skip("builds cloister-launch with pinned build IDs")
	}
	dir := t.TempDir()
	for _, id := range []string{"pinned/abcdefghij", "v1.2+x"} {
		p := filepath.Join(dir, "launch")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid="+id, "-o", p, "github.com/cloister-dev/cloister/cmd/cloister-launch")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		l, err := DescribeLauncher(p)
		if err != nil || l.GoBuildID != "" || l.Size == 0 {
			t.Errorf("DescribeLauncher of a launcher built with -buildid=%q = %+v, %v; want it recorded without a build ID", id, l, err)
		}
	}

	for _, tc := range []struct{ path, want string }{
		{"/bin/true", "is not a launcher that reads the enclave manifest's launcher record: it is older than this cloister, or not a launcher"},
		{"launcher.go", "expected an ELF executable"},
		{filepath.Join(dir, "none"), "no such file"},
	} {
		if _, err := os.Stat(tc.path); tc.path == "/bin/true" && err != nil {
			continue
		}
		if l, err := DescribeLauncher(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DescribeLauncher(%s) = %+v, %v; want an error saying %q", tc.path, l, err, tc.want)
		}
	}
}

// TestScanLauncher checks the one-pass scan against a direct computation, with the ID, the mark
// and the excluded range placed across the scan's 256 KiB reads.
func TestScanLauncher(t *testing.T) {
	id, mark := []byte("abc/def"), []byte(`json:"launcher,omitempty"`)
	const chunk = 256 << 10
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		size       int
		ids, marks []int
		excl       [2]int64
		wantMarked bool
	}{
		{size: 100, ids: []int{0, 50}, marks: []int{10}, excl: [2]int64{40, 48}, wantMarked: true},
		{size: chunk + 100, ids: []int{chunk - 3}, marks: []int{chunk - 40}, excl: [2]int64{chunk + 5, chunk + 50}, wantMarked: true},
		{size: chunk + 100, ids: []int{chunk + 20}, excl: [2]int64{chunk - 5, chunk + 5}},
		{size: 3*chunk + 7, ids: []int{chunk - 6, 2*chunk - 1, 3 * chunk}, excl: [2]int64{2*chunk - 20, 2*chunk - 10}},
		{size: 2 * chunk, ids: []int{chunk - 7}, marks: []int{2*chunk - len(mark)}, wantMarked: true},
		{size: 0},
	} {
		b := make([]byte, tc.size)
		for i := range b {
			b[i] = byte('a' + r.IntN(3)) // letters of the ID, never the whole ID by chance often
		}
		for _, at := range tc.ids {
			copy(b[at:], id)
		}
		for _, at := range tc.marks {
			copy(b[at:], mark)
		}
		sc, err := scanLauncher(bytes.NewReader(b), id, mark, tc.excl)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(b)
		if tc.excl[1] > 0 {
			clear(want[tc.excl[0]:tc.excl[1]])
		}
		want = bytes.ReplaceAll(want, id, make([]byte, len(id)))
		if sc.sum != sha256.Sum256(b) || sc.content != sha256.Sum256(want) || sc.size != int64(len(b)) || sc.marked != tc.wantMarked {
			t.Errorf("size %d: scan = size %d, marked %v, content hash %x; want marked %v, content hash %x",
				tc.size, sc.size, sc.marked, sc.content[:4], tc.wantMarked, sha256.Sum256(want))
		}
	}
}
