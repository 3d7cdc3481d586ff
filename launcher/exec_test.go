package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// nobody is the unprivileged user the tests switch to.
const nobody = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
}

// TestChownIfOurs: of what standard streams may be, only the container's own anonymous pipes
// and sockets change owner; a terminal, /dev/null, a named FIFO, a regular file, or a pipe
// that root does not own stay as they are.
func TestChownIfOurs(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	open := func(t *testing.T, p string, flag int) *os.File {
		f, err := os.OpenFile(p, flag, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	pipe := func(t *testing.T) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return w
	}
	for _, tc := range []struct {
		name string
		file func(t *testing.T) *os.File
		want bool
	}{
		{"anonymous pipe", pipe, true},
		{"socket pair", func(t *testing.T) *os.File {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
			t.Cleanup(func() { a.Close(); b.Close() })
			return a
		}, true},
		{"pipe of another user", func(t *testing.T) *os.File {
			w := pipe(t)
			if err := w.Chown(1234, 1234); err != nil {
				t.Fatal(err)
			}
			return w
		}, false},
		{"/dev/null", func(t *testing.T) *os.File { return open(t, "/dev/null", os.O_WRONLY) }, false},
		{"regular file", func(t *testing.T) *os.File { return open(t, filepath.Join(dir, "log"), os.O_WRONLY|os.O_CREATE) }, false},
		{"named FIFO", func(t *testing.T) *os.File {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return open(t, p, os.O_RDWR)
		}, false},
		{"terminal", func(t *testing.T) *os.File {
			ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
			if err != nil {
				t.Skipf("no pseudo-terminals: %v", err)
			}
			t.Cleanup(func() { ptmx.Close() })
			var unlock, n int32
			if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
				t.Fatal(e)
			}
			if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
				t.Fatal(e)
			}
			pts := open(t, "/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR)
			if !isTerminal(int(pts.Fd())) {
				t.Fatalf("%s is not a terminal", pts.Name())
			}
			return pts
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.file(t)
			var before syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &before); err != nil {
				t.Fatal(err)
			}
			got, err := chownIfOurs(int(f.Fd()), nobody, nobody)
			if err != nil {
				t.Fatalf("chownIfOurs: %v", err)
			}
			var after syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &after); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("chownIfOurs(%s) = %v, want %v", tc.name, got, tc.want)
			}
			wantUID := before.Uid
			if tc.want {
				wantUID = nobody
			}
			if after.Uid != wantUID || (tc.want && after.Gid != nobody) || (!tc.want && after.Gid != before.Gid) {
				t.Errorf("owner after = %d:%d, want %d (before %d:%d)", after.Uid, after.Gid, wantUID, before.Uid, before.Gid)
			}
		})
	}
}

// envRunPlan makes the test binary run a plan (JSON) through Exec or Supervise instead of the
// tests: the launcher's last step, without a Coordinator.
const envRunPlan = "CLOISTER_TEST_RUN_PLAN"

func init() {
	if v := os.Getenv(envRunPlan); v != "" {
		var p Plan
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			os.Stderr.WriteString("bad plan: " + err.Error() + "\n")
			os.Exit(100)
		}
		if p.Exec {
			err := Exec(&p)
			os.Stderr.WriteString("exec: " + err.Error() + "\n")
			os.Exit(101)
		}
		code, err := Supervise(context.Background(), &p)
		if err != nil {
			os.Stderr.WriteString("supervise: " + err.Error() + "\n")
		}
		os.Exit(code)
	}
}

// runPlan starts this test binary running p, with stdout and stderr pipes, and returns the
// command (started; the caller waits).
func runPlan(t *testing.T, ctx context.Context, p Plan, stdout, stderr *bytes.Buffer) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunPlan+"="+string(b))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestStdioWritableForNonRootUser is issue 8's first break: an image whose user is not root
// writes to /dev/stdout and /dev/stderr, which reopens the pipes the container runtime gave
// it. The pipes belong to root (this test, like a runtime, made them), mode 0600; the
// launcher hands them to the application's user before switching to it, in exec and in
// supervisor mode, and both lines arrive.
func TestStdioWritableForNonRootUser(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("starts processes")
	}
	const script = "echo out >/dev/stdout && echo err >/dev/stderr && id -u"
	// Without the launcher, the same user on the same kind of pipes fails: the test tests
	// something.
	var out, errb bytes.Buffer
	control := exec.Command("/bin/sh", "-c", script)
	control.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	control.Stdout, control.Stderr = &out, &errb
	if err := control.Run(); err == nil || !strings.Contains(errb.String(), "ermission denied") {
		t.Fatalf("user %d reopened a root-owned pipe without the launcher (err %v, stderr %q); the test would prove nothing", nobody, err, errb.String())
	}
	for _, mode := range []string{"exec", "supervise"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := runPlan(t, ctx, Plan{Path: "/bin/sh", Argv: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
				Dir: "/", UID: nobody, GID: nobody, Exec: mode == "exec"}, &stdout, &stderr)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", mode, err, stdout.String(), stderr.String())
			}
			if want := "out\n" + strconv.Itoa(nobody) + "\n"; stdout.String() != want {
				t.Errorf("stdout = %q, want %q", stdout.String(), want)
			}
			if !strings.HasSuffix(stderr.String(), "err\n") {
				t.Errorf("stderr = %q, want it to end with %q", stderr.String(), "err\n")
			}
		})
	}
}
