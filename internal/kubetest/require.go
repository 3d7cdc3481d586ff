package kubetest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// RequireEnv names the environment variable that, set to a true value, turns a missing
// prerequisite of a cluster into a failure even when [e2etest.RequireEnv] is not set.
// With e2etest.RequireEnv=1 (as .ci/run sets) missing prerequisites fail the test too.
const RequireEnv = "CLOISTER_REQUIRE_KUBE"

// A Prereq checks one thing a cluster needs from the machine; see [e2etest.Prereq].
type Prereq = e2etest.Prereq

// Require checks every prerequisite. If some are missing it fails tb when [RequireEnv] or
// [e2etest.RequireEnv] is set to a true value, and skips it otherwise.
func Require(tb testing.TB, prereqs ...Prereq) {
	tb.Helper()
	if v, err := strconv.ParseBool(os.Getenv(RequireEnv)); err == nil && v {
		var missing []error
		for _, p := range prereqs {
			if err := p(); err != nil {
				missing = append(missing, err)
			}
		}
		if len(missing) > 0 {
			tb.Fatalf("%s=1, so every prerequisite of a Kubernetes cluster must be here; missing:\n%v", RequireEnv, errors.Join(missing...))
		}
		return
	}
	e2etest.Require(tb, prereqs...)
}

// SkipShort skips tb with -short: a cluster runs real processes for seconds.
func SkipShort(tb testing.TB) { e2etest.SkipShort(tb) }

// controlPlanePrereqs: etcd from Debian, and the go command and flock for the build script.
func controlPlanePrereqs() error {
	return errors.Join(
		e2etest.Program("etcd", "apt-get install etcd-server")(),
		e2etest.Program("go", "the Go toolchain, to build the Kubernetes binaries")(),
		e2etest.Program("flock", "apt-get install util-linux")(),
	)
}

// nodePrereqs: root, containerd and runc from Debian, the CNI loopback plugin, and cgroup v1
// or v2 hierarchies.
func nodePrereqs() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, fmt.Errorf("root: a node (containerd and the kubelet) runs as root; running as uid %d", os.Geteuid()))
	}
	errs = append(errs,
		e2etest.Program("containerd", "apt-get install containerd")(),
		e2etest.Program("ctr", "apt-get install containerd")(),
		e2etest.Program("containerd-shim-runc-v2", "apt-get install containerd")(),
		e2etest.Program("runc", "apt-get install runc")(),
		e2etest.File(cniPluginDir+"/loopback", "apt-get install containernetworking-plugins")(),
	)
	m, err := cgroupMounts()
	switch {
	case err != nil:
		errs = append(errs, err)
	default:
		var missing []string
		for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "pids"} {
			if m[c] == "" {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 && m["unified"] == "" {
			errs = append(errs, fmt.Errorf("cgroups: no hierarchy with the controllers %s", strings.Join(missing, ", ")))
		}
	}
	return errors.Join(errs...)
}
