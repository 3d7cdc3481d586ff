// Package cli builds the cloister command tree. Every command is a thin layer: it parses flags,
// calls the packages that do the work (client, sgx/verify, image, coordinator, …) and prints.
package cli

// The reference in docs/cli is generated from the command tree and package jsonoutput; a test
// fails when it is stale.
//go:generate go test -run ^TestCLIDocs$ -update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// app holds what every command shares: the streams and the process environment. Commands get
// it from their constructor instead of reading globals, so tests run them with buffers.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Main runs the cloister command line with args and returns the process exit code.
//
// A failure is printed to stderr as "cloister: message". In JSON mode (--output json) a command
// that fails before printing its result also prints the failure as a jsonoutput.Error on stdout,
// so that stdout always holds one JSON document.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &countingWriter{w: stdout}
	a := &app{stdin: stdin, stdout: out, stderr: stderr, getenv: os.Getenv}
	root := a.newRootCmd()
	ran := false
	onRun(root, func() { ran = true })
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if !ran {
		err = usageError(err)
	}
	code := 1
	if e, ok := errors.AsType[*exitError](err); ok {
		code = e.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "cloister:", msg)
		if out.n == 0 && jsonRequested(cmd, args) {
			writeJSON(stdout, errorDocument(err))
		}
	}
	return code
}

// countingWriter counts what a command wrote, so that Main knows whether it printed a result.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exitError ends a command with a specific exit code; msg may be empty when the command has
// already reported the problem.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cloister",
		Short: "Run unmodified containers as attested, confidential workloads",
		Long: `Cloister runs existing container images as confidential containers: each workload proves by
remote attestation what it runs, and only then receives its identity, secrets and configuration
from an attested Coordinator that enforces one deployment manifest.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.AddCommand(
		a.newQuoteCmd(),
		a.newSimCmd(),
		a.newCoordinatorCmd(),
		a.newVerifyCmd(),
		a.newManifestCmd(),
		a.newSecretCmd(),
		a.newStatusCmd(),
		a.newCertificateCmd(),
		a.newLaunchCmd(),
		a.newEnclaveCmd(),
		a.newDemoCmd(),
		a.newImageCmd(),
		a.newBenchCmd(),
		a.newUserCmd(),
		a.newAuditCmd(),
		a.newBundleCmd(),
		a.newInjectorCmd(),
		a.newRecoverCmd(),
		a.newInstallCmd(),
		a.newUninstallCmd(),
		a.newCheckCmd(),
	)
	return root
}

// onRun makes cmd and its children call f just before their RunE, so that Main can tell errors
// of a command from those cobra found before running it (an unknown command or flag, a wrong
// number of arguments, a missing required flag): the latter are usage errors.
func onRun(cmd *cobra.Command, f func()) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			f()
			return run(c, args)
		}
	}
	for _, sub := range cmd.Commands() {
		onRun(sub, f)
	}
}
