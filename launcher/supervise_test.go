package launcher

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/pki"
)

// lines reads a process's output line by line, for tests that wait for what it prints.
type lines struct {
	mu   sync.Mutex // guards all
	all  []string
	more chan struct{} // closed and replaced when a line arrives
}

func readLines(r io.Reader) *lines {
	l := &lines{more: make(chan struct{})}
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			l.mu.Lock()
			l.all = append(l.all, s.Text())
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l
}

// await returns the first line that contains sub, waiting up to d for it.
func (l *lines) await(t *testing.T, sub string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, s := range l.all {
			if strings.Contains(s, sub) {
				l.mu.Unlock()
				return s
			}
		}
		more := l.more
		l.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no line with %q within %v; got %q", sub, d, l.String())
		}
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// startLauncher runs this test binary as cloister-launch (see TestMain) against tc with the
// enclave manifest at path, with stdout and stderr read line by line.
func startLauncher(t *testing.T, ctx context.Context, tc *testCoordinator, path string) (cmd *exec.Cmd, stdout, stderr *lines) {
	t.Helper()
	cmd = exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunLauncher+"=1",
		EnvCoordinator+"="+tc.mesh, EnvWorkload+"=app", EnvInstance+"=app-1", EnvTEE+"="+TEESimulation,
		EnvSimDir+"="+tc.platform.Dir(), EnvEnclaveManifest+"="+path, EnvRetryTimeout+"=0s")
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr = readLines(outR), readLines(errR)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("launcher stderr:\n%s", stderr.String())
		}
	})
	return cmd, stdout, stderr
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("launcher: %v", err)
	}
	return 0
}

func certSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM(b)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %v", path, err)
	}
	return certs[0].SerialNumber.Text(16)
}

// TestSuperviseRenews runs the launcher as a container's init with a workload certificate
// valid for 5 seconds: before it expires, the launcher activates again, the application's
// certificate and key files are replaced by a new pair (new serial, matching key) and the
// application gets its reload signal, SIGHUP, without restarting. Then SIGTERM to the
// launcher reaches the application, whose exit status the launcher exits with.
func TestSuperviseRenews(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; waits for a renewal")
	}
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	out := filepath.Join(dir, "out")
	// The application counts SIGHUPs and exits 7 on SIGTERM; it gives up after a minute.
	app := `trap 'n=$((n+1)); echo "hup $n"' HUP; trap 'echo term; exit 7' TERM; n=0; echo "started $$"
i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 9`
	tc.setManifest(t, map[string]any{
		"settings": map[string]any{"workload_certificate_validity": "5s"},
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package":       "p",
			"reload_signal": "SIGHUP",
			"files":         map[string]string{out + "/cert.pem": "{{.Workload.Cert}}", out + "/key.pem": "{{.Workload.Key}}"},
			"argv":          []string{"sh", "-c", app},
		}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd, stdout, stderr := startLauncher(t, ctx, tc, path)
	started := stdout.await(t, "started ", 10*time.Second)
	first := certSerial(t, filepath.Join(out, "cert.pem"))
	start := time.Now()

	stdout.await(t, "hup 1", 10*time.Second)
	renewedAfter := time.Since(start)
	second := certSerial(t, filepath.Join(out, "cert.pem"))
	if second == first {
		t.Errorf("after the reload signal cert.pem still holds serial %s", first)
	}
	certs, _ := pki.ParseCertsPEM(must(os.ReadFile(filepath.Join(out, "cert.pem"))))
	key, err := pki.ParseKeyPEM(must(os.ReadFile(filepath.Join(out, "key.pem"))))
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(certs[0].PublicKey) {
		t.Errorf("the renewed key.pem does not belong to the renewed certificate")
	}
	if renewedAfter > 5*time.Second {
		t.Errorf("renewed %v after the start; want before the 5s certificate expired", renewedAfter)
	}
	stderr.await(t, "time=", time.Second) // the launcher logs
	if !strings.Contains(stderr.String(), "workload certificate renewed") {
		t.Errorf("the launcher did not log the renewal:\n%s", stderr.String())
	}
	if n := tc.c.ActivationCounts()["app"]; n < 2 {
		t.Errorf("the Coordinator counted %d activations; a renewal is an activation", n)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 7 {
		t.Errorf("launcher exited %d, want the application's 7\nstdout:\n%s", code, stdout.String())
	}
	stdout.await(t, "term", time.Second)
	if strings.Count(stdout.String(), "started ") != 1 {
		t.Errorf("the application started more than once:\n%s", stdout.String())
	}
	pid, _ := strconv.Atoi(strings.TrimPrefix(started, "started "))
	if pid == cmd.Process.Pid {
		t.Errorf("the application has the launcher's PID %d: it was exec'd, not supervised", pid)
	}
}

// TestMainExecs: a workload with exec: true replaces the launcher (the application has its
// PID), as before supervision existed.
func TestMainExecs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package": "p", "exec": true, "argv": []string{"sh", "-c", "echo pid $$; exit 5"},
		}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd, stdout, _ := startLauncher(t, ctx, tc, path)
	got := stdout.await(t, "pid ", 10*time.Second)
	if code := waitExit(t, cmd); code != 5 {
		t.Errorf("exit code %d, want the application's 5", code)
	}
	if want := fmt.Sprintf("pid %d", cmd.Process.Pid); got != want {
		t.Errorf("application printed %q, want %q: exec keeps the launcher's PID", got, want)
	}
}

// TestSuperviseSignals: every forwarded signal reaches the application, and the launcher exits
// with 128+N when signal N killed the application.
func TestSuperviseSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	app := `for s in HUP INT QUIT USR1 USR2 WINCH; do trap "echo got $s" $s; done; echo ready
i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunPlan+`={"Path":"/bin/sh","Argv":["sh","-c",`+strconv.Quote(app)+`],"Dir":"/","UID":-1,"GID":-1}`)
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	stdout := readLines(pr)
	stdout.await(t, "ready", 10*time.Second)
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH} {
		if err := cmd.Process.Signal(s); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(sigName(s), "SIG")
		stdout.await(t, "got "+name, 10*time.Second)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d (128+SIGTERM, which killed the application)", code, 128+int(syscall.SIGTERM))
	}
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH"}[s]
}

// TestSuperviseReapsOrphans: a child of the application that is orphaned (its parent exits
// first) becomes the launcher's, as it would become PID 1's in a container, and when it exits
// the launcher reaps it: no zombie is left in /proc. The application's own status still
// decides the launcher's.
func TestSuperviseReapsOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "orphan")
	// The subshell starts the orphan-to-be and exits at once; the application then waits for
	// the test to say it is done looking.
	app := fmt.Sprintf(`(sleep 1 & echo $! >%[1]s.tmp && mv %[1]s.tmp %[1]s); echo ready
i=0; while [ ! -e %[1]s.done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 3`, pidFile)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunPlan+`={"Path":"/bin/sh","Argv":["sh","-c",`+strconv.Quote(app)+`],"Dir":"/","UID":-1,"GID":-1}`)
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	readLines(pr).await(t, "ready", 10*time.Second)
	orphan, err := strconv.Atoi(strings.TrimSpace(string(must(os.ReadFile(pidFile)))))
	if err != nil {
		t.Fatal(err)
	}
	launcher := cmd.Process.Pid
	if ppid, state, ok := procStat(orphan); !ok || ppid != launcher || state == "Z" {
		t.Fatalf("orphan %d: parent %d, state %q, alive %v; want a running child of the launcher %d", orphan, ppid, state, ok, launcher)
	}
	// The orphan exits after a second; then it must vanish from /proc, not linger as a zombie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, state, ok := procStat(orphan)
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d still in /proc in state %q: not reaped", orphan, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if z := zombiesOf(launcher); len(z) > 0 {
		t.Errorf("zombie children of the launcher: %v", z)
	}
	if err := os.WriteFile(pidFile+".done", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 3 {
		t.Errorf("exit code %d, want the application's 3", code)
	}
}

// procStat returns the parent and state of pid from /proc, and whether it exists.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0], true
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var z []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, state, ok := procStat(p); ok && ppid == pid && state == "Z" {
			z = append(z, p)
		}
	}
	return z
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSuperviseRenewalRefused: a renewal is an activation, so a workload with
// max_activations: 1 cannot renew. The refusal neither stops nor restarts the application; the
// launcher keeps trying, and once the certificate expired says so loudly.
func TestSuperviseRenewalRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; waits for a certificate to expire")
	}
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	out := filepath.Join(dir, "out")
	app := `trap 'exit 0' TERM; echo started; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 9`
	tc.setManifest(t, map[string]any{
		"settings": map[string]any{"workload_certificate_validity": "5s"},
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package": "p", "max_activations": 1, "reload_signal": "SIGHUP",
			"files": map[string]string{out + "/cert.pem": "{{.Workload.Cert}}"},
			"argv":  []string{"sh", "-c", app},
		}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd, stdout, stderr := startLauncher(t, ctx, tc, path)
	stdout.await(t, "started", 10*time.Second)
	serial := certSerial(t, filepath.Join(out, "cert.pem"))
	stderr.await(t, `level=ERROR msg="the Coordinator refuses to renew the workload certificate; a manifest change is needed`, 10*time.Second)
	stderr.await(t, `level=ERROR msg="WORKLOAD CERTIFICATE EXPIRED`, 15*time.Second)
	if !strings.Contains(stderr.String(), "ACTIVATION_LIMIT") {
		t.Errorf("the launcher did not log why the renewal was refused:\n%s", stderr.String())
	}
	if n := strings.Count(stderr.String(), "ACTIVATION_LIMIT"); n != 2 {
		t.Errorf("the refusal was logged %d times, want twice (when refused, when expired), not once per retry:\n%s", n, stderr.String())
	}
	if got := certSerial(t, filepath.Join(out, "cert.pem")); got != serial {
		t.Errorf("a refused renewal changed cert.pem (serial %s, was %s)", got, serial)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit code %d, want 0: the application ran until SIGTERM", code)
	}
	if n := strings.Count(stdout.String(), "started"); n != 1 {
		t.Errorf("the application started %d times, want 1", n)
	}
}

func TestRenewAt(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := from.Add(90 * time.Minute)
	for range 1000 {
		at := renewAt(from, na)
		if lo, hi := from.Add(51*time.Minute), from.Add(60*time.Minute); at.Before(lo) || at.After(hi) {
			t.Fatalf("renewAt = %v after issue; want between 51m and 60m (2/3 of 90m less up to 10%% jitter)", at.Sub(from))
		}
	}
}

func TestChangedEnv(t *testing.T) {
	got := changedEnv([]string{"A=1", "B=2", "C=secret"}, []string{"A=1", "B=3", "D=4"})
	if want := []string{"B", "C", "D"}; !slices.Equal(got, want) {
		t.Errorf("changedEnv = %q, want %q (names only)", got, want)
	}
}

// TestSuperviseKilledLauncherEndsApplication: on a host, where the launcher is not PID 1, a
// launcher killed outright takes the application with it rather than leave it running
// unsupervised.
func TestSuperviseKilledLauncherEndsApplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	app := `echo "pid $$"; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunPlan+`={"Path":"/bin/sh","Argv":["sh","-c",`+strconv.Quote(app)+`],"Dir":"/","UID":-1,"GID":-1}`)
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := readLines(pr).await(t, "pid ", 10*time.Second)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, state, ok := procStat(pid)
		if !ok || state == "Z" {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("application %d still running (state %s) after its launcher was killed", pid, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
