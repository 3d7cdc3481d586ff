package demo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `cloister demo` end to end, with the real binary, real Coordinator and launcher
// processes and the unmodified programs. It is the README's first command.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the cloister binary and runs real processes")
	}
	exe := filepath.Join(t.TempDir(), "cloister")
	build := exec.Command("go", "build", "-o", exe, "github.com/cloister-dev/cloister/cmd/cloister")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cloister: %v\n%s", err, out)
	}
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), Config{Exe: exe, Out: &out, Dir: dir})
	t.Log(out.String())
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	for _, want := range []string{
		"verified: MRENCLAVE",
		"rejects it",
		"the server answered over mTLS",
		"refusing to start",
		`cloister_activations_total{result="ok",workload="client"} 1`,
		"every step did what it should",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("demo left its directory behind: %v", err)
	}
}
