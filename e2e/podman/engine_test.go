package podman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// engine runs podman with the test's containers.conf.
type engine struct {
	t    *testing.T
	conf string
	run  string // unique suffix of this run's image and container names
}

// newEngine returns podman with testdata/containers.conf. It skips the test with -short, and
// when podman does not work here or another of prereqs is missing, unless
// CLOISTER_REQUIRE_PODMAN=1, which fails it (see e2etest.Require).
func newEngine(t *testing.T, prereqs ...e2etest.Prereq) *engine {
	t.Helper()
	e2etest.SkipShort(t)
	conf, err := filepath.Abs("testdata/containers.conf")
	if err != nil {
		t.Fatal(err)
	}
	e2etest.Require(t, append([]e2etest.Prereq{e2etest.Podman(conf)}, prereqs...)...)
	b := make([]byte, 4)
	rand.Read(b)
	return &engine{t: t, conf: conf, run: hex.EncodeToString(b)}
}

// podman runs podman with args and returns its combined output.
func (e *engine) podman(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+e.conf)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("podman %s: timed out after %s", args[0], timeout)
	}
	return string(out), err
}

// must runs podman and fails the test on an error.
func (e *engine) must(timeout time.Duration, args ...string) string {
	e.t.Helper()
	out, err := e.podman(timeout, args...)
	if err != nil {
		e.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// load loads a docker-archive and removes the image when the test ends.
func (e *engine) load(archive, ref string) {
	e.t.Helper()
	e.must(2*time.Minute, "load", "-q", "-i", archive)
	e.t.Cleanup(func() { e.podman(time.Minute, "rmi", "-f", ref) })
}

// container is a container started by a test.
type container struct {
	e    *engine
	name string
}

// start runs image in the background on the host network, with the
// simulated platform simDir mounted read-only at /sim and env set; it is
// removed when the test ends.
func (e *engine) start(name, image, simDir string, env map[string]string) *container {
	e.t.Helper()
	c := &container{e: e, name: "cloister-e2e-" + name + "-" + e.run}
	args := []string{"run", "-d", "--name", c.name, "--network", "host", "-v", simDir + ":/sim:ro", "-e", "CLOISTER_SIM_DIR=/sim"}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	e.must(time.Minute, append(args, image)...)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("log of container %s:\n%s", c.name, tail(c.logs(), 4000))
		}
		e.podman(time.Minute, "rm", "-f", "-t", "2", c.name)
	})
	return c
}

// logs returns the container's output.
func (c *container) logs() string {
	out, _ := c.e.podman(30*time.Second, "logs", c.name)
	return out
}

// wait waits for the container to exit and returns its exit code.
func (c *container) wait(timeout time.Duration) int {
	c.e.t.Helper()
	out := c.e.must(timeout, "wait", c.name)
	var code int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &code); err != nil {
		c.e.t.Fatalf("podman wait %s: %q: %v", c.name, out, err)
	}
	return code
}

// running reports whether the container is still running.
func (c *container) running() bool {
	out, err := c.e.podman(30*time.Second, "inspect", "--format", "{{.State.Running}}", c.name)
	return err == nil && strings.TrimSpace(out) == "true"
}
