package e2etest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/logbuf"
)

// Deadlines. Everything runs on loopback; these only bound how long a broken run hangs.
const (
	// StartTimeout bounds how long a Coordinator takes to write its address file.
	StartTimeout = 20 * time.Second
	// StopTimeout bounds how long a process takes to exit after SIGINT.
	StopTimeout = 15 * time.Second
	// RunTimeout bounds a launcher or CLI run and a request to a Coordinator.
	RunTimeout = 30 * time.Second
)

// SkipShort skips tb with -short: end-to-end tests build binaries and run real processes.
func SkipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end test with real processes; skipped with -short")
	}
}

// Env is one test's world: a temporary directory, the processes started in it and everything
// they printed. Its methods are safe for concurrent use.
type Env struct {
	// Dir is the test's temporary directory; processes start in it.
	Dir string
	// ConfigDir is the CLI's CLOISTER_CONFIG_DIR (pinned roots), below Dir.
	ConfigDir string
	// Bins are the binaries under test.
	Bins *Binaries

	t *testing.T // the test that made the Env, which its cleanup reports to

	mu    sync.Mutex // guards logs, procs and seq
	logs  []*Log
	procs []*Proc
	seq   int
}

// New returns an Env for t, after skipping t with -short and building the binaries. When t
// ends, every process still running is interrupted (and killed after [StopTimeout]), which
// fails a test that had not failed: tests stop what they start and check how it exited. If
// t failed, every captured log is printed with t.Log.
func New(t *testing.T) *Env {
	t.Helper()
	SkipShort(t)
	e := &Env{Bins: Bins(t), Dir: t.TempDir(), t: t}
	e.ConfigDir = filepath.Join(e.Dir, "cli-config")
	t.Cleanup(e.cleanup)
	return e
}

// Path returns the path elem below the Env's directory.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Dir}, elem...)...)
}

// BaseEnv is the environment every process gets: nothing from the test's own environment.
func (e *Env) BaseEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + e.Dir, "LANG=C"}
}

func (e *Env) cleanup() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	for _, p := range procs {
		if p.Exited() {
			continue
		}
		if !e.t.Failed() {
			e.t.Errorf("%s was still running at the end of the test; stopping it", p.Name)
		}
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	}
	if e.t.Failed() {
		e.dumpLogs()
	}
}

func (e *Env) dumpLogs() {
	for _, l := range e.Logs() {
		e.t.Logf("===== %s =====\n%s", l.Name, l.Out.String())
		if l.SecretOutput != nil {
			e.t.Logf("===== %s (stdout, holds secrets: not shown) =====", l.Name)
		}
	}
}

// Log is the captured output of one process.
type Log struct {
	// Name is a sequence number, for the order processes started in, and the process's name.
	Name string
	// Out is the process's standard error, and its standard output unless SecretOutput holds it.
	Out *logbuf.Buffer
	// SecretOutput, if not nil, is the standard output of a command whose purpose is to print
	// secret values (cloister secret get). It is not a log: it is never printed, and tests that
	// scan logs for secrets leave it out.
	SecretOutput *logbuf.Buffer
}

// Record adds a Log for a process the caller runs itself; see [Log] for secretOutput.
func (e *Env) Record(name string, secretOutput bool) *Log {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	l := &Log{Name: fmt.Sprintf("%03d %s", e.seq, name), Out: &logbuf.Buffer{}}
	if secretOutput {
		l.SecretOutput = &logbuf.Buffer{}
	}
	e.logs = append(e.logs, l)
	return l
}

// Logs returns every Log so far, in the order they were recorded.
func (e *Env) Logs() []*Log {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.logs)
}

// Proc is a process started by [Env.Start].
type Proc struct {
	// Name names the process in failures and logs.
	Name string
	// Cmd is the running command.
	Cmd *exec.Cmd
	// Log is its captured output.
	Log *Log

	done chan struct{}
	err  error // Cmd.Wait's result, valid once done is closed
}

// Start starts bin with args in the Env's directory, with exactly the environment environ
// (nothing is inherited), capturing its output. It fails t if bin does not start.
func (e *Env) Start(t testing.TB, name string, environ []string, bin string, args ...string) *Proc {
	t.Helper()
	l := e.Record(name, false)
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = l.Out, l.Out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: l, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// Exited reports whether p has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how p ended (exec.Cmd.Wait's error), or nil while it runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Output returns everything p printed so far.
func (p *Proc) Output() string { return p.Log.Out.String() }

// Wait waits until p exits and returns its exit code. It fails t after timeout.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; output so far:\n%s", p.Name, timeout, p.Output())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Interrupt sends SIGINT and requires a clean exit (code 0) within [StopTimeout].
func (p *Proc) Interrupt(t testing.TB) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited before it was asked to stop: %v\n%s", p.Name, p.err, p.Output())
	}
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("signal %s: %v", p.Name, err)
	}
	if code := p.Wait(t, StopTimeout); code != 0 {
		t.Fatalf("%s exited with code %d after SIGINT, want 0 (a clean shutdown):\n%s", p.Name, code, p.Output())
	}
}

// WaitFor polls cond every 20 ms until it reports true, and fails t after timeout. cond's
// message says what it saw last; it is part of the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", timeout, what, last)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		}
	}
}

// WriteFile writes b to path with mode, making the parent directories; it fails t on an error.
func WriteFile(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

// WriteJSON writes v as indented JSON to path (mode 0644) and returns what it wrote.
func WriteJSON(t testing.TB, path string, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, path, b, 0o644)
	return b
}
