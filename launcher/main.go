package launcher

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
)

// Main runs a launch configured by the environment, then runs the application: supervised
// ([Supervise], the default), returning its exit status, or exec'd ([Exec], when the workload
// says exec), returning only when the application could not be started.
func Main(ctx context.Context, getenv func(string) string, environ []string, stderr io.Writer) int {
	parent := ctx
	// Until the application starts, SIGINT and SIGTERM stop the launch.
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
	if plan.Exec {
		err = Exec(plan)
		fmt.Fprintf(stderr, "cloister-launch: %v\n", err)
		return 1
	}
	code, err := Supervise(parent, plan) // ctx ended with stop; from now on signals are forwarded
	if err != nil {
		fmt.Fprintf(stderr, "cloister-launch: %v\n", err)
	}
	return code
}
