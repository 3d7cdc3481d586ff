package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/sgx/sim"
)

// The recover commands that docs/manifest.md shows inline (the README harness runs only
// README.md's code blocks) parse as written: with placeholders filled in, each gets past its
// flags and the Coordinator identity and fails only on what the placeholders cannot provide
// (no share file, no Coordinator), never with a usage error.
func TestDocsRecoverCommands(t *testing.T) {
	doc, err := os.ReadFile("../../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("ADDR", "127.0.0.1:1", "DIR", p.Dir(), "KEY", filepath.Join(dir, "key.pem"),
		"SHARE", filepath.Join(dir, "share.json"), "CH.json", filepath.Join(dir, "ch.json"), "SIGNED.json", filepath.Join(dir, "signed.json"))
	spans := regexp.MustCompile("`(cloister recover[^`]*)`").FindAllStringSubmatch(regexp.MustCompile(`\s+`).ReplaceAllString(string(doc), " "), -1)
	if len(spans) < 5 {
		t.Fatalf("found %d recover commands in docs/manifest.md, expected at least 5 (status, online, challenge, offline, submit)", len(spans))
	}
	for _, m := range spans {
		args := strings.Fields(fill.Replace(m[1]))[1:]
		var stdout, stderr bytes.Buffer
		code := Main(args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 {
			t.Errorf("%q succeeded with nothing behind its placeholders", m[1])
			continue
		}
		if strings.Contains(stderr.String(), "no expected Coordinator identity") || strings.Contains(stderr.String(), "unknown flag") || strings.Contains(stderr.String(), "required") && strings.Contains(stderr.String(), "--") {
			t.Errorf("%q as documented: %s", m[1], stderr.String())
		}
		t.Logf("%s: exit %d: %s", m[1], code, strings.TrimSpace(stderr.String()))
	}
}
