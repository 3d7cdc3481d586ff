package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestDemo runs `cloister demo` end to end, with the real binary, real Coordinator and launcher
// processes and the unmodified programs. It is the README's first command.
func TestDemo(t *testing.T) {
	e2etest.SkipShort(t)
	exe := e2etest.Bins(t).Cloister
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
