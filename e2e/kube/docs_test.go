package kube

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestDocsCommands checks every `cloister` command of docs/kubernetes.md against the built
// command tree: the command exists and takes every flag shown (cobra rejects an unknown flag
// even with --help). TestInstall runs the simulation path itself.
func TestDocsCommands(t *testing.T) {
	bins := e2etest.Bins(t)
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	inSh := false
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
			continue
		case strings.HasPrefix(line, "```"):
			inSh = false
			continue
		}
		if !inSh || !strings.HasPrefix(line, "cloister ") {
			continue
		}
		n++
		args := append(strings.Fields(line)[1:], "--help")
		if out, err := exec.Command(bins.Cloister, args...).CombinedOutput(); err != nil {
			t.Errorf("docs/kubernetes.md: %s: %v\n%s", line, err, out)
		}
	}
	if n < 10 {
		t.Errorf("docs/kubernetes.md has %d cloister commands; expected the install, check, verify, upgrade and uninstall paths", n)
	}
}
