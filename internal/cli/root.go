// Package cli builds the cloister command tree. Every command is a thin layer: it parses flags,
// calls the packages that do the work (client, sgx/verify, image, coordinator, …) and prints.
package cli

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
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := a.newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		if e.msg != "" {
			fmt.Fprintln(stderr, "cloister:", e.msg)
		}
		return e.code
	}
	fmt.Fprintln(stderr, "cloister:", err)
	return 1
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
		a.newDemoCmd(),
		a.newImageCmd(),
		a.newBenchCmd(),
	)
	return root
}
