package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// Supervise runs the application of p as the launcher's child and stays as the container's
// init until it exits:
//
//   - every catchable signal the launcher receives is forwarded to the application, except
//     SIGCHLD (the launcher's own), SIGURG (the Go runtime's preemption) and SIGPIPE (a write
//     of the launcher's own to a closed pipe);
//   - every child that ends is reaped: the launcher is PID 1 in a container, or else a child
//     subreaper, so orphans of the application are reparented to it; only the application's
//     status counts;
//   - the workload certificate is renewed before it expires (see [Plan.NotAfter]), the
//     delivered files replaced and the application sent p.ReloadSignal, if any. A renewal never
//     starts or stops the application; a failed one is retried until it succeeds.
//
// It returns the application's exit status, 128+N if signal N killed it, once the application
// has ended. An error means the application could not be started. ctx ending stops renewals,
// never the application, which only signals stop. The application runs as
// p.UID:p.GID in p.Dir with p.Env, as [Exec] would run it, in a process group of its own; when
// standard input is a terminal, that group is the terminal's foreground, so a Ctrl-C reaches
// the application once, from the terminal, as it would without the launcher.
func Supervise(ctx context.Context, p *Plan) (int, error) {
	log := slog.New(slog.DiscardHandler)
	if p.launch != nil {
		log = p.launch.log
	}
	// With the application in the terminal's foreground the launcher is in the background, and
	// the kernel stops a background process that writes to or reads from the terminal with
	// SIGTTOU or SIGTTIN. Those are about the launcher's own log lines, not for the
	// application: ignored, a write goes through, and nothing is forwarded.
	signal.Ignore(syscall.SIGTTOU, syscall.SIGTTIN)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwardedSignals()...)
	defer signal.Stop(sigs)
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	if os.Getpid() != 1 {
		if err := setChildSubreaper(); err != nil {
			log.Warn("cannot become the reaper of the application's orphans; they are left to the system's init", "reason", err.Error())
		}
	}

	proc, err := start(p)
	if err != nil {
		return 1, err
	}
	log.Info("application started", "pid", proc.Pid)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if p.launch != nil && !p.NotAfter.IsZero() {
		r := &renewer{launch: p.launch, env: p.Env, argv: p.Argv, from: p.activated, notAfter: p.NotAfter,
			reload: p.ReloadSignal, signal: proc.Signal}
		wg.Go(func() { r.run(ctx) })
	}
	for {
		select {
		case s := <-sigs:
			if err := proc.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.Warn("forward signal to the application", "signal", s.String(), "reason", err.Error())
			}
		case <-chld:
			if ws, ok := reap(proc.Pid); ok {
				code := exitCode(ws)
				log.Info("application ended", "status", ws.ExitStatus(), "signaled", ws.Signaled(), "exit_code", code)
				return code, nil
			}
		}
	}
}

// start starts the application as a child, as the user of p, with the launcher's standard
// streams. The launcher changes to p.Dir itself, as root, so that the application starts where
// [Exec] would start it.
func start(p *Plan) (*os.Process, error) {
	if err := os.Chdir(p.Dir); err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	// Pdeathsig: if the launcher is killed outright (on a host; in a container PID 1's end ends
	// everything), the application ends with it rather than run on unsupervised and unrenewed.
	attr := &os.ProcAttr{Env: p.Env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	if p.noParentDeathSignal {
		attr.Sys.Pdeathsig = 0
	}
	if isTerminal(0) {
		attr.Sys.Foreground, attr.Sys.Ctty = true, 0
	}
	if p.UID >= 0 {
		if err := chownStdio(p.UID, p.GID); err != nil {
			return nil, err
		}
		groups := []uint32{uint32(p.GID)}
		if len(p.Groups) > 0 {
			groups = groups[:0]
			for _, g := range p.Groups {
				groups = append(groups, uint32(g))
			}
		}
		attr.Sys.Credential = &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.GID), Groups: groups}
	}
	// The parent-death signal follows the thread that forked; keep it until the child exists.
	runtime.LockOSThread()
	proc, err := os.StartProcess(p.Path, p.Argv, attr)
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Path, err)
	}
	return proc, nil
}

// reap collects every child that has ended, without blocking, and returns the status of app if
// it was one of them.
func reap(app int) (status syscall.WaitStatus, ended bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children left; 0: none has ended
			return status, ended
		}
		if pid == app && (ws.Exited() || ws.Signaled()) {
			status, ended = ws, true
		}
	}
}

// exitCode is the launcher's exit code for the application's status, as a shell reports it.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// forwardedSignals lists the signals Supervise passes on: every catchable one but SIGCHLD,
// SIGURG, SIGPIPE, SIGTTIN and SIGTTOU (see Supervise), realtime signals included. Synchronous signals (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGTRAP) are the launcher's own faults when the kernel raises them and are not
// listed: the Go runtime handles them.
func forwardedSignals() []os.Signal {
	sigs := []os.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGALRM, syscall.SIGTERM, syscall.SIGSTKFLT, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGWINCH,
		syscall.SIGIO, syscall.SIGPWR, syscall.SIGSYS,
	}
	for s := sigRTMin; s <= sigRTMax; s++ {
		sigs = append(sigs, syscall.Signal(s))
	}
	return sigs
}

// The realtime signals a program may use (glibc reserves 32 and 33).
const (
	sigRTMin = 34
	sigRTMax = 64
)

// prSetChildSubreaper is prctl's PR_SET_CHILD_SUBREAPER.
const prSetChildSubreaper = 36

// setChildSubreaper makes orphaned descendants children of the launcher rather than of the
// system's init, so that the launcher reaps them when it is not PID 1 (as under `cloister
// launch` on a host, or in tests).
func setChildSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

// isTerminal says whether fd is a terminal.
func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}
