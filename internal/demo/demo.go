// Package demo is `cloister demo`: the whole Cloister flow on one machine, in simulation mode,
// with real processes. It creates a simulated SGX platform, starts a Coordinator, verifies it as
// an outside client would, sets a manifest, and launches unmodified programs through the
// launcher: an mTLS server (openssl s_server) and client (curl) that know nothing about
// Cloister and use only the certificates and secrets that arrive as files and environment, and
// a workload whose trusted file was tampered with, which the launcher refuses.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Config configures a demo run.
type Config struct {
	// Exe is the cloister binary, run as the Coordinator and (as `cloister launch`) as the
	// launcher. Default: the running executable.
	Exe string
	// Out receives the narration.
	Out io.Writer
	// Keep leaves the Coordinator running and its files in place, and prints how to reach it.
	Keep bool
	// Dir is the working directory; default a new temporary directory (removed unless Keep).
	Dir string
}

// Run runs the demo. It returns nil only if every step did what it should.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Exe = exe
	}
	for _, prog := range []string{"openssl", "curl", "sh"} {
		if _, err := exec.LookPath(prog); err != nil {
			err = fmt.Errorf("the demo runs unmodified programs from this machine and needs %q in PATH (Debian: apt-get install openssl curl): %w", prog, err)
			fmt.Fprintf(cfg.Out, "Demo FAILED: %v\n", err)
			return err
		}
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "cloister-demo-")
		if err != nil {
			return err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	d := &run{cfg: cfg, dir: dir, out: cfg.Out}
	err = d.steps(ctx)
	d.cleanup(err == nil && cfg.Keep)
	if err != nil {
		fmt.Fprintf(d.out, "\nDemo FAILED: %v\nLogs are in %s\n", err, dir)
		return err
	}
	if !cfg.Keep {
		os.RemoveAll(dir)
	}
	fmt.Fprintf(d.out, "\nDemo finished: every step did what it should.\n")
	return nil
}

// run is the state of one demo run.
type run struct {
	cfg   Config
	dir   string
	out   io.Writer
	step  int
	procs []*proc
	coord *proc
}

// proc is a child process with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (d *run) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *run) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "   %s\n", fmt.Sprintf(format, args...))
}

// start runs the cloister binary with args and env in the background, logging to a file.
func (d *run) start(name string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(d.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(d.cfg.Exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	return p, nil
}

// wait waits for p to exit, at most timeout.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s did not finish within %s", p.name, timeout)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// cleanup stops every process (but the Coordinator when keep is set).
func (d *run) cleanup(keep bool) {
	for _, p := range d.procs {
		if p.exited() || (keep && p == d.coord) {
			continue
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		if err := p.wait(5 * time.Second); err != nil && !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}
