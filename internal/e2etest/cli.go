package e2etest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/logbuf"
)

// CLIResult is what a run of the cloister CLI printed and how it exited.
type CLIResult struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r CLIResult) String() string {
	return fmt.Sprintf("cloister %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// CLI runs the cloister CLI with the Env's configuration directory and [BaseEnv], for at most
// [RunTimeout]. Its output is captured in the Env's logs.
func (e *Env) CLI(t testing.TB, args ...string) CLIResult { return e.runCLI(t, false, args...) }

// CLISecrets runs a CLI command whose standard output holds secret values: that output is
// kept out of the logs (see [Log]).
func (e *Env) CLISecrets(t testing.TB, args ...string) CLIResult { return e.runCLI(t, true, args...) }

func (e *Env) runCLI(t testing.TB, secretOutput bool, args ...string) CLIResult {
	t.Helper()
	l := e.Record("cli: cloister "+strings.Join(args, " "), secretOutput)
	ctx, cancel := context.WithTimeout(t.Context(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Bins.Cloister, args...)
	cmd.Env = append(e.BaseEnv(), "CLOISTER_CONFIG_DIR="+e.ConfigDir)
	cmd.Dir = e.Dir
	var stdout, stderr logbuf.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, l.Out)
	if secretOutput {
		cmd.Stdout = io.MultiWriter(&stdout, l.SecretOutput)
	} else {
		cmd.Stdout = io.MultiWriter(&stdout, l.Out)
	}
	err := cmd.Run()
	res := CLIResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run cloister %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// MustCLI runs the CLI and requires exit code 0.
func (e *Env) MustCLI(t testing.TB, args ...string) CLIResult {
	t.Helper()
	r := e.CLI(t, args...)
	if r.Code != 0 {
		t.Fatalf("%v\nwant exit code 0", r)
	}
	return r
}

// CLIFails runs the CLI and requires exit code 1 and every substring of want in its standard
// error.
func (e *Env) CLIFails(t testing.TB, want []string, args ...string) CLIResult {
	t.Helper()
	r := e.CLI(t, args...)
	if r.Code != 1 {
		t.Errorf("%v\nwant exit code 1", r)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("cloister %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.Stderr)
		}
	}
	return r
}
