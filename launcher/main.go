package launcher

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
)

// Main runs a launch configured by the environment and execs the application. It returns an
// exit code only when the application could not be started.
func Main(ctx context.Context, getenv func(string) string, environ []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := ConfigFromEnv(getenv, environ, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "cloister-launch: %v\n", err)
		return 2
	}
	plan, err := Prepare(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cloister-launch: not starting the application: %v\n", err)
		return 1
	}
	stop()
	err = Exec(plan)
	fmt.Fprintf(stderr, "cloister-launch: %v\n", err)
	return 1
}
