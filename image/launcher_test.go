package image

import (
	"bytes"
	"crypto/sha256"
	"fmt"
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
	if li, err := checkLauncher(bin); err != nil {
		t.Error(err)
	} else if w := buildIDWarning(li); w != "" {
		t.Errorf("checkLauncher(%s) warns %q; want no warning about its build ID", bin, w)
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
		li, err := checkLauncher(p)
		if err != nil || !strings.Contains(buildIDWarning(li), "has no Go build ID that is the Go toolchain's hash of its content") {
			t.Errorf("checkLauncher of a launcher built with -buildid=%q: %v; want a warning that it will hash itself", id, err)
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

// TestScanLauncher checks the one-pass scan against a direct computation: the excluded range
// zeroed, then every occurrence of the ID (83 bytes, as the go command writes them), with the
// ID and the mark placed at every offset across the scan's first two read boundaries, and an
// ID partly excluded.
func TestScanLauncher(t *testing.T) {
	id := []byte(strings.Repeat("abcdefghij", 8) + "xyz")
	mark := []byte(`json:"launcher,omitempty"`)
	keep := max(len(id), len(mark)) - 1
	const chunk = 256 << 10
	size := 2*chunk + keep + 1000
	r := rand.New(rand.NewPCG(1, 2))
	filler := make([]byte, size)
	for i := range filler {
		filler[i] = byte(r.UintN(256))
	}
	check := func(name string, ids, marks []int, excl [2]int64) {
		t.Helper()
		b := bytes.Clone(filler)
		for _, at := range ids {
			copy(b[at:], id)
		}
		for _, at := range marks {
			copy(b[at:], mark)
		}
		sc, err := scanLauncher(bytes.NewReader(b), id, mark, excl)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(b)
		clear(want[excl[0]:excl[1]])
		want = bytes.ReplaceAll(want, id, make([]byte, len(id)))
		if sc.sum != sha256.Sum256(b) || sc.content != sha256.Sum256(want) || sc.size != int64(len(b)) || sc.marked != (len(marks) > 0) {
			t.Errorf("%s: scan = size %d, marked %v, content hash %x; want marked %v, content hash %x",
				name, sc.size, sc.marked, sc.content[:4], len(marks) > 0, sha256.Sum256(want))
		}
	}
	for _, boundary := range []int{chunk + keep, 2*chunk + keep} { // where the first and second reads end
		for at := boundary - len(id) - 1; at <= boundary+1; at++ {
			check(fmt.Sprintf("ID at %d", at), []int{at, 100}, nil, [2]int64{10, 20})
		}
		for at := boundary - len(mark) - 1; at <= boundary+1; at++ {
			check(fmt.Sprintf("mark at %d", at), nil, []int{at}, [2]int64{})
		}
		check("excluded across a boundary", []int{boundary + 300}, nil, [2]int64{int64(boundary) - 8, int64(boundary) + 8})
	}
	check("ID partly excluded", []int{500, 1000}, nil, [2]int64{510, 520})
	check("nothing", nil, nil, [2]int64{})
}
