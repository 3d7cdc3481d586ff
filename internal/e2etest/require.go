package e2etest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// RequireEnv names the environment variable that turns a missing prerequisite of the container
// tests into a failure: with RequireEnv=1 (set by .ci/run) the tests must run, not skip.
const RequireEnv = "CLOISTER_REQUIRE_PODMAN"

// A Prereq checks one thing a test needs from the machine. Its error names what is missing and
// how to install it; nil means it is there.
type Prereq func() error

// Require checks every prerequisite. If some are missing, it skips tb, or fails it when
// RequireEnv is set to a true value; the message names each missing prerequisite.
func Require(tb testing.TB, prereqs ...Prereq) {
	tb.Helper()
	var missing []error
	for _, p := range prereqs {
		if err := p(); err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) == 0 {
		return
	}
	if required() {
		tb.Fatalf("%s=1, so every prerequisite of this test must be here; missing:\n%v", RequireEnv, errors.Join(missing...))
	}
	tb.Skipf("skipped, missing:\n%v\n(set %s=1 to fail instead)", errors.Join(missing...), RequireEnv)
}

// required reports whether RequireEnv asks for every prerequisite.
func required() bool {
	v, err := strconv.ParseBool(os.Getenv(RequireEnv))
	return err == nil && v
}

// Program is the program name in PATH; install says how to get it.
func Program(name, install string) Prereq {
	return func() error {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s: not in PATH (%s)", name, install)
		}
		return nil
	}
}

// File is the file or directory path; install says how to get it.
func File(path, install string) Prereq {
	return func() error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w (%s)", path, err, install)
		}
		return nil
	}
}

// Podman is a podman that works with the containers.conf file conf: podman in PATH, the OCI
// runtime conf names ([engine] runtime) installed, and `podman info` succeeding with
// CONTAINERS_CONF=conf and reporting that runtime. The check runs once per process and conf.
func Podman(conf string) Prereq {
	check, _ := podmanChecks.LoadOrStore(conf, sync.OnceValue(func() error { return checkPodman(conf) }))
	return check.(func() error)
}

// podmanChecks are Podman's checks by containers.conf path.
var podmanChecks sync.Map

// runtimeDirs are where podman looks for an OCI runtime named without a path, besides PATH
// (containers/common's default runtime paths).
var runtimeDirs = []string{"/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"}

func checkPodman(conf string) error {
	if _, err := exec.LookPath("podman"); err != nil {
		return errors.New("podman: not in PATH (apt-get install podman)")
	}
	var cfg struct {
		Engine struct{ Runtime string } `toml:"engine"`
	}
	if _, err := toml.DecodeFile(conf, &cfg); err != nil {
		return fmt.Errorf("containers.conf: %w", err)
	}
	if rt := cfg.Engine.Runtime; rt != "" && !filepath.IsAbs(rt) {
		if _, err := exec.LookPath(rt); err != nil && !inAny(rt, runtimeDirs) {
			return fmt.Errorf("%s: the OCI runtime %s names, not in PATH or %s (apt-get install %s)",
				rt, conf, strings.Join(runtimeDirs, ", "), rt)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", "info", "--format", "{{.Host.OCIRuntime.Name}}")
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var rootless string
		if uid := os.Getuid(); uid != 0 {
			rootless = fmt.Sprintf("; running as uid %d, which needs rootless podman: newuidmap and entries in /etc/subuid and /etc/subgid", uid)
		}
		return fmt.Errorf("a working podman: `podman info` with CONTAINERS_CONF=%s: %v: %s%s", conf, err, strings.TrimSpace(string(out)), rootless)
	}
	if got, want := strings.TrimSpace(string(out)), cfg.Engine.Runtime; want != "" && got != filepath.Base(want) {
		return fmt.Errorf("podman uses the OCI runtime %q; expected %q, which %s names", got, want, conf)
	}
	return nil
}

func inAny(name string, dirs []string) bool {
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}
