package readme

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/logbuf"
)

// A command is one shell command of the README: a line of a ```sh block, with the lines its
// trailing backslashes continue.
type command struct {
	text       string // as written, continuation lines included
	line       int    // where it starts in the file, from 1
	background bool   // it ends with a single &
	podman     bool   // its comment says "needs podman"
}

// shellCommands returns the commands of every ```sh block of a Markdown document, in order.
func shellCommands(doc string) []command {
	var (
		out     []command
		inBlock bool
		cur     *command
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !inBlock && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell"):
			inBlock = true
			continue
		case inBlock && trimmed == "```":
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		if cur == nil {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			cur = &command{line: n}
			cur.text = line
		} else {
			cur.text += "\n" + line
		}
		if strings.HasSuffix(line, "\\") {
			continue
		}
		code, comment := splitComment(cur.text)
		code = strings.TrimSpace(code)
		cur.background = strings.HasSuffix(code, "&") && !strings.HasSuffix(code, "&&")
		cur.podman = strings.Contains(comment, "needs podman")
		out = append(out, *cur)
		cur = nil
	}
	return out
}

// splitComment splits the last line of a command at its comment: a # after white space,
// outside quotes.
func splitComment(text string) (code, comment string) {
	var quote rune
	for i, r := range text {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\t'):
			return text[:i], text[i:]
		}
	}
	return text, ""
}

// selfRun is the README's command that this test is part of: running it here would recurse.
const selfRun = "go test ./..."

func TestShellCommands(t *testing.T) {
	doc := "text\n```sh\ncloister a   # x\n\n# only a comment\ncloister b \\\n    --c d &   # needs podman\necho '#not a comment' && true\n```\n```json\n{}\n```\n"
	got := shellCommands(doc)
	want := []command{
		{text: "cloister a   # x", line: 3},
		{text: "cloister b \\\n    --c d &   # needs podman", line: 6, background: true, podman: true},
		{text: "echo '#not a comment' && true", line: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("shellCommands = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d = %+v; want %+v", i, got[i], want[i])
		}
	}
}

// TestREADME runs every shell command of README.md literally and in order, as a newcomer on a
// fresh clone would, and requires each to succeed:
//
//   - commands that run the go tool (go run, go install) run in the module's root, as in a
//     clone, with GOBIN in the test's directory so that nothing is installed on the machine;
//     the installed launcher must be static, as image convert requires;
//   - every other command runs in a scratch directory holding a copy of examples/ and
//     testdata/ (what the tour reads), with HOME there and the binaries under test
//     (e2etest.Build) first in PATH;
//   - a command ending in & is started in the background; the test waits until the addresses
//     of its --*-addr flags accept connections, and at the end stops it with SIGINT and
//     requires a clean exit;
//   - a command whose comment says "needs podman" runs only where podman works (and must run
//     with CLOISTER_REQUIRE_PODMAN=1);
//   - "go test ./..." is not run: this test is part of it.
func TestREADME(t *testing.T) {
	e2etest.SkipShort(t)
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := shellCommands(string(doc))
	if len(cmds) < 10 {
		t.Fatalf("README.md has %d shell commands; expected the tour", len(cmds))
	}
	e := e2etest.New(t)
	for _, dir := range []string{"examples", "testdata"} {
		if err := os.CopyFS(e.Path(dir), os.DirFS(filepath.Join(root, dir))); err != nil {
			t.Fatal(err)
		}
	}
	gobin := filepath.Join(t.TempDir(), "gobin")
	binDir := filepath.Dir(e.Bins.Cloister)
	tourEnv := []string{"PATH=" + binDir + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + e.Dir, "LANG=C"}
	goEnv := append(os.Environ(), "GOBIN="+gobin)

	var background []*e2etest.Proc
	t.Cleanup(func() {
		for _, p := range background {
			if !p.Exited() {
				p.Interrupt(t)
			}
		}
	})
	podman := e2etest.Podman(filepath.Join(root, "e2e", "podman", "testdata", "containers.conf"))
	for _, c := range cmds {
		name := "README.md:" + strconv.Itoa(c.line) + ": " + firstLine(c.text)
		code, _ := splitComment(c.text)
		code = strings.TrimSpace(code)
		switch {
		case code == selfRun:
			t.Logf("%s: not run (this test is part of it)", name)
			continue
		case c.podman:
			if err := podman(); err != nil {
				if requirePodman() {
					t.Fatalf("%s: needs podman, which %s=1 requires: %v", name, e2etest.RequireEnv, err)
				}
				t.Logf("%s: not run, no podman: %v", name, err)
				continue
			}
		}
		if c.background {
			requireFree(t, name, code)
			sh := "exec " + strings.TrimSuffix(code, "&")
			p := e.Start(t, name, tourEnv, "/bin/sh", "-c", sh)
			background = append(background, p)
			waitListening(t, p, code)
			continue
		}
		dir, env, timeout := e.Dir, tourEnv, e2etest.RunTimeout
		if isGo(code) {
			dir, env, timeout = root, goEnv, 10*time.Minute
		}
		run(t, e, name, dir, env, timeout, c.text)
	}
	if _, err := os.Stat(gobin); err == nil {
		checkInstalled(t, gobin)
	}
	// The tour's bench activations show in the Coordinator's status, per workload.
	r := e.MustCLI(t, "status", "-c", "127.0.0.1:4433", "--config-dir", e.Path(".config", "cloister"), "--output", "json")
	var st jsonoutput.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, r.Stdout)
	}
	if n := st.Activations["bench"]; n != 200 {
		t.Errorf("status: %d activations of bench; want the tour's 200 (%v)", n, st.Activations)
	}
}

// run runs text with sh -c in dir and fails t unless it exits 0.
func run(t *testing.T, e *e2etest.Env, name, dir string, env []string, timeout time.Duration, text string) {
	t.Helper()
	l := e.Record(name, false)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", text)
	cmd.Dir, cmd.Env = dir, env
	var out logbuf.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, l.Out), io.MultiWriter(&out, l.Out)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out.String())
	}
}

var addrFlag = regexp.MustCompile(`--[a-z-]*addr[= ]+(\S+)`)

// waitListening waits until every address the command's --*-addr flags name accepts
// connections.
func waitListening(t *testing.T, p *e2etest.Proc, code string) {
	t.Helper()
	for _, m := range addrFlag.FindAllStringSubmatch(code, -1) {
		addr := m[1]
		e2etest.WaitFor(t, e2etest.StartTimeout, p.Name+" to listen on "+addr, func() (bool, string) {
			if p.Exited() {
				t.Fatalf("%s exited: %v\n%s", p.Name, p.Err(), p.Output())
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
			return true, ""
		})
	}
}

// requireFree fails t if an address the command's --*-addr flags name is taken: the tour
// would talk to whatever listens there.
func requireFree(t *testing.T, name, code string) {
	t.Helper()
	for _, m := range addrFlag.FindAllStringSubmatch(code, -1) {
		ln, err := net.Listen("tcp", m[1])
		if err != nil {
			t.Fatalf("%s: the tour needs %s free: %v", name, m[1], err)
		}
		ln.Close()
	}
}

// checkInstalled checks what the README's go install line installed: the three binaries, the
// launcher and the Coordinator binary static.
func checkInstalled(t *testing.T, gobin string) {
	t.Helper()
	for _, name := range []string{"cloister-launch", "cloister-coordinator"} {
		f, err := elf.Open(filepath.Join(gobin, name))
		if err != nil {
			t.Fatalf("the README's go install made no usable %s: %v", name, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("the README's go install made a dynamically linked %s; the image commands refuse it", name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(gobin, "cloister")); err != nil {
		t.Errorf("the README's go install made no cloister: %v", err)
	}
}

// isGo reports whether a command runs the go tool, after any VAR=value assignments.
func isGo(code string) bool {
	for _, w := range strings.Fields(code) {
		if strings.Contains(w, "=") {
			continue
		}
		return w == "go"
	}
	return false
}

func requirePodman() bool {
	v, err := strconv.ParseBool(os.Getenv(e2etest.RequireEnv))
	return err == nil && v
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}
