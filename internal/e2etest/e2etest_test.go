package e2etest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
)

// recorder is a testing.TB whose Fatalf and Skipf are recorded, for checking what a helper
// decides. Call the helper through run.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with r on a goroutine of its own, which Fatalf and Skipf end.
func (r *recorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestRequire(t *testing.T) {
	here := File(t.TempDir(), "never shown")
	gone := filepath.Join(t.TempDir(), "no-such-program")
	for _, tc := range []struct {
		name      string
		env       string
		prereqs   []Prereq
		wantSkip  []string
		wantFatal []string
	}{
		{name: "all there", prereqs: []Prereq{here, Program("sh", "x")}},
		{name: "all there, required", env: "1", prereqs: []Prereq{here}},
		{
			name:     "missing file skips",
			prereqs:  []Prereq{here, File(gone, "apt-get install it")},
			wantSkip: []string{gone, "no such file or directory", "apt-get install it", RequireEnv + "=1 to fail instead"},
		},
		{
			name:      "required: every missing one named",
			env:       "1",
			prereqs:   []Prereq{File(gone, "apt-get install it"), here, Program("cloister-no-such-program", "apt-get install nothing")},
			wantFatal: []string{RequireEnv + "=1", gone, "cloister-no-such-program: not in PATH (apt-get install nothing)"},
		},
		{
			name:     "not required unless true",
			env:      "0",
			prereqs:  []Prereq{Program("cloister-no-such-program", "x")},
			wantSkip: []string{"cloister-no-such-program: not in PATH"},
		},
		{
			name:      "podman",
			env:       "true",
			prereqs:   []Prereq{func() error { return errors.New("podman: not in PATH (apt-get install podman)") }},
			wantFatal: []string{"podman: not in PATH"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			r := &recorder{TB: t}
			r.run(func(tb testing.TB) { Require(tb, tc.prereqs...) })
			for _, c := range []struct {
				what, got string
				want      []string
			}{{"skip", r.skip, tc.wantSkip}, {"failure", r.fatal, tc.wantFatal}} {
				if (c.got == "") != (len(c.want) == 0) {
					t.Errorf("%s message %q; want one: %v", c.what, c.got, len(c.want) > 0)
				}
				for _, w := range c.want {
					if !strings.Contains(c.got, w) {
						t.Errorf("%s message %q does not say %q", c.what, c.got, w)
					}
				}
			}
		})
	}
}

func TestPodmanConf(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	WriteFile(t, conf, []byte("[engine]\nruntime = \"cloister-no-such-runtime\"\n"), 0o644)
	err := checkPodman(conf)
	switch {
	case err == nil:
		t.Fatalf("a containers.conf naming a runtime that does not exist passed")
	case strings.HasPrefix(err.Error(), "podman: not in PATH"):
		t.Logf("no podman here: %v", err)
	case !strings.Contains(err.Error(), "cloister-no-such-runtime: the OCI runtime "+conf+" names, not in PATH"):
		t.Errorf("checkPodman = %v; want the missing runtime named", err)
	}
	WriteFile(t, conf, []byte("[engine\n"), 0o644)
	if err := checkPodman(conf); err == nil || !strings.Contains(err.Error(), "podman: not in PATH") && !strings.Contains(err.Error(), "containers.conf") {
		t.Errorf("checkPodman of a broken containers.conf = %v", err)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, "the third poll", func() (bool, string) { n++; return n == 3, "" })
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) {
		WaitFor(tb, 50*time.Millisecond, "nothing", func() (bool, string) { return false, "still nothing" })
	})
	if want := "for nothing; last: still nothing"; !strings.Contains(r.fatal, want) {
		t.Errorf("WaitFor that times out fails with %q; want %q", r.fatal, want)
	}
}

func TestSourceKey(t *testing.T) {
	root := t.TempDir()
	settings := []byte(`{"GOOS":"linux"}`)
	WriteFile(t, filepath.Join(root, "go.mod"), []byte("module example.com/m\n"), 0o644)
	WriteFile(t, filepath.Join(root, "cmd", "x", "main.go"), []byte("package main\n"), 0o644)
	key := func() string {
		t.Helper()
		k, err := sourceKey(root, settings)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key()
	// What the go command never builds from does not count.
	WriteFile(t, filepath.Join(root, "cmd", "x", "main_test.go"), []byte("package main\n"), 0o644)
	WriteFile(t, filepath.Join(root, "cmd", "x", "testdata", "a"), []byte("a"), 0o644)
	WriteFile(t, filepath.Join(root, ".git", "HEAD"), []byte("ref"), 0o644)
	WriteFile(t, filepath.Join(root, "_scratch", "y.go"), []byte("package y\n"), 0o644)
	if k := key(); k != k0 {
		t.Errorf("the key changed with test files, testdata, .git or _ directories")
	}
	for name, change := range map[string]func(){
		"source edited":    func() { WriteFile(t, filepath.Join(root, "cmd", "x", "main.go"), []byte("package main // x\n"), 0o644) },
		"file added":       func() { WriteFile(t, filepath.Join(root, "pkg", "y.go"), []byte("package y\n"), 0o644) },
		"embedded changed": func() { WriteFile(t, filepath.Join(root, "pkg", "schema.json"), []byte("{}"), 0o644) },
		"go.sum added":     func() { WriteFile(t, filepath.Join(root, "go.sum"), nil, 0o644) },
		"settings":         func() { settings = []byte(`{"GOOS":"darwin"}`) },
	} {
		before := key()
		change()
		if key() == before {
			t.Errorf("%s: the key did not change", name)
		}
	}
}

func TestPrune(t *testing.T) {
	base := t.TempDir()
	entry := func(name string, age time.Duration, ready bool) string {
		dir := filepath.Join(base, name)
		WriteFile(t, filepath.Join(dir, cloisterName), []byte("binary"), 0o700)
		WriteFile(t, dir+".lock", nil, 0o600)
		mark := dir
		if ready {
			mark = filepath.Join(dir, readyName)
			WriteFile(t, mark, nil, 0o600)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(mark, old, old); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	keep := entry("keep", 2*unusedFor, true)
	recent := entry("recent", unusedFor/2, true)
	old := entry("old", 2*unusedFor, true)
	unpublished := entry("unpublished", 2*unusedFor, false)
	inUse := entry("in-use", 2*unusedFor, true)
	l, err := lockFile(inUse+".lock", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	mixed := filepath.Join(base, mixedPrefix+"1-2")
	WriteFile(t, filepath.Join(mixed, cloisterName), nil, 0o700)
	past := time.Now().Add(-2 * unusedFor)
	if err := os.Chtimes(mixed, past, past); err != nil {
		t.Fatal(err)
	}

	prune(base, "keep")
	for dir, want := range map[string]bool{keep: true, recent: true, inUse: true, old: false, unpublished: false, mixed: false} {
		_, err := os.Stat(dir)
		if got := err == nil; got != want {
			t.Errorf("after prune, %s exists: %v, want %v", filepath.Base(dir), got, want)
		}
		if _, err := os.Stat(dir + ".lock"); dir != mixed && (err == nil) != want {
			t.Errorf("after prune, the lock of %s exists: %v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

// TestBuild checks that the binaries are built once and shared through a published cache entry.
func TestBuild(t *testing.T) {
	SkipShort(t)
	b := Bins(t)
	if b2 := Bins(t); b2 != b {
		t.Errorf("Bins built twice in one process")
	}
	for _, p := range []string{b.Cloister, b.Launcher} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: %v, %v; want an executable", p, err, fi)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(b.Cloister), readyName)); err != nil && !strings.Contains(b.Cloister, mixedPrefix) {
		t.Errorf("the cache entry is not published: %v", err)
	}
}

// TestCoordinator starts, verifies, restarts and stops a Coordinator, and runs the CLI as a
// user.
func TestCoordinator(t *testing.T) {
	e := New(t)
	p := e.NewPlatform(t, "platform")
	c := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)
	v, err := client.Verify(t.Context(), c.Addrs.Client, c.Expect())
	if err != nil {
		t.Fatalf("verify the Coordinator: %v", err)
	}
	if m := c.Metrics(t); len(m) == 0 {
		t.Errorf("no metrics")
	}
	c.Restart(t)
	v2, err := client.Verify(t.Context(), c.Addrs.Client, client.ExpectSimulated(p.Root()))
	if err != nil {
		t.Fatalf("verify the restarted Coordinator: %v", err)
	}
	if !v2.Root.Equal(v.Root) {
		t.Errorf("the deployment root changed across the restart")
	}
	u := e.NewUser(t, "alice")
	if u.Cert == nil || u.Cert.Subject.CommonName != "alice" || !strings.Contains(u.CertPEM, "BEGIN CERTIFICATE") {
		t.Errorf("user certificate: %+v", u.Cert)
	}
	e.MustCLI(t, append([]string{"verify", "--simulation", p.Dir(), "-c", c.Addrs.Client}, u.Flags()...)...)
	r := e.CLIFails(t, []string{"unknown command"}, "no-such-command")
	if r.Code != 1 {
		t.Errorf("exit code %d", r.Code)
	}
	c.Stop(t)
	if !c.Proc.Exited() || c.Proc.Err() != nil {
		t.Errorf("after Stop: exited %v, %v", c.Proc.Exited(), c.Proc.Err())
	}
	logs := e.Logs()
	if len(logs) < 4 || !strings.Contains(logs[0].Name, "001 coordinator (start 1)") {
		t.Errorf("logs: %d, first %q", len(logs), logs[0].Name)
	}
}
