package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// NodeName is the name the node registers as.
const NodeName = "cloister-node-0"

// PauseImage is the pod sandbox ("pause") image of the node's containerd: a static Go program
// (./pause) that waits for SIGTERM, imported when the node starts. No registry is involved;
// the name is never pulled.
const PauseImage = "localhost/cloister-kubetest/pause:1"

var getOpts = metav1.GetOptions{}

// Node is a cluster's node: containerd and a kubelet, with their state below [Cluster.Dir].
type Node struct {
	// Name is the node's name, [NodeName].
	Name string
	// ContainerdSocket is the path of containerd's gRPC socket (namespace "k8s.io" holds the
	// Kubernetes images and containers).
	ContainerdSocket string
	// CgroupParent is the cgroup (cgroupfs path, the same in every hierarchy) below which the
	// kubelet puts every pod; it is removed when the test ends.
	CgroupParent string
	// PauseBinary is the static program inside [PauseImage]; tests may put it in images of
	// their own (see [ProgramImage]).
	PauseBinary string

	dir        string
	containerd *process
	kubelet    *process
	cgroups    []string // the CgroupParent directories made in each hierarchy
}

func (n *Node) exited() error {
	if err := n.containerd.exited(); err != nil {
		return err
	}
	if n.kubelet != nil {
		return n.kubelet.exited()
	}
	return nil
}

// cniPlugin is the node's pod network: none. It reports the pod's loopback address as the pod
// IP (containerd wants an address on the interface it names) and leaves the namespace with
// only its loopback interface, which containerd's built-in "loopback" network brings up. Pods
// reach nothing outside themselves; a pod that must reach the host uses hostNetwork. The
// plugin is a shell script so that the node needs no network plugin beyond Debian's
// containernetworking-plugins "loopback".
const cniPlugin = `#!/bin/sh
# kubetest-loopback: a CNI plugin that gives a pod no network but its own loopback.
case "$CNI_COMMAND" in
ADD)
	printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"interface":0,"address":"127.0.0.1/8"}],"dns":{}}' "$CNI_IFNAME" "$CNI_NETNS"
	;;
VERSION)
	printf '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}'
	;;
esac
exit 0
`

const cniConfig = `{
	"cniVersion": "1.0.0",
	"name": "kubetest",
	"plugins": [{"type": "kubetest-loopback"}]
}
`

// containerdConfig is containerd 1.6's configuration (version 2) with every path below the
// node's directory.
const containerdConfig = `version = 2
root = "{{dir}}/containerd/root"
state = "{{dir}}/containerd/state"
disabled_plugins = [
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{{dir}}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{pause}}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # These machines deny CAP_SYS_RESOURCE even to root, so no process may lower its
  # oom_score_adj: runc fails with "failed to update /proc/self/oom_score_adj: Permission
  # denied" for the sandbox's -998 unless containerd clamps the value to its own.
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{{runc}}"
        Root = "{{dir}}/containerd/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{dir}}/cni/bin"
    conf_dir = "{{dir}}/cni/net.d"
    max_conf_num = 1
`

// startContainerd writes the node's files and starts containerd; then it imports the pause
// image.
func (c *Cluster) startContainerd(ctx context.Context) (*Node, error) {
	dir := filepath.Join(c.Dir, "node")
	n := &Node{Name: NodeName, dir: dir, ContainerdSocket: filepath.Join(dir, "containerd.sock")}
	for _, d := range []string{"containerd", "cni/bin", "cni/net.d", "kubelet", "pods-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cni/bin/kubetest-loopback"), []byte(cniPlugin), 0o755); err != nil {
		return nil, err
	}
	// containerd's own loopback network runs the "loopback" plugin from the same directory.
	if err := os.Symlink(filepath.Join(cniPluginDir, "loopback"), filepath.Join(dir, "cni/bin/loopback")); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cni/net.d/10-kubetest.conflist"), []byte(cniConfig), 0o644); err != nil {
		return nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, err
	}
	cfg := strings.NewReplacer("{{dir}}", dir, "{{pause}}", PauseImage, "{{runc}}", runc).Replace(containerdConfig)
	cfgPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	t0 := time.Now()
	p, err := startProcess(c.logDir, "containerd", "containerd", []string{"--config", cfgPath, "--log-level", "info"}, minimalEnv())
	if err != nil {
		return nil, err
	}
	n.containerd = p
	c.pendingNode = n // stopped by stopNode, not with the control plane
	pause, err := c.pauseImage()
	if err != nil {
		return nil, err
	}
	n.PauseBinary = c.bins.Pause
	if err := n.waitContainerd(ctx); err != nil {
		return nil, err
	}
	c.timed("containerd ready", t0)
	if err := n.ImportImage(ctx, pause); err != nil {
		return nil, fmt.Errorf("import the pause image: %w", err)
	}
	return n, nil
}

// waitContainerd waits until containerd answers on its socket.
func (n *Node) waitContainerd(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	var last string
	for {
		if err := n.containerd.exited(); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.ContainerdSocket, "version").CombinedOutput()
		if err == nil {
			return nil
		}
		last = strings.TrimSpace(string(out))
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd not ready after %v: %s", ReadyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ImportImage imports an image archive (docker-archive, as written by go-containerregistry's
// tarball.Write, or an OCI archive) into the node's containerd, where pods with
// imagePullPolicy Never (or IfNotPresent) find it by the name the archive records.
func (n *Node) ImportImage(ctx context.Context, archive string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", n.ContainerdSocket, "--namespace", "k8s.io",
		"images", "import", "--no-unpack=false", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %w: %s", archive, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startKubelet makes the kubelet's cgroup parent, certificates and configuration, and starts
// it.
func (c *Cluster) startKubelet(ctx context.Context, n *Node, port int, issue func(string, string, []string, []net.IP, []string) (*keyPair, error)) error {
	client, err := issue("kubelet-client", "system:node:"+NodeName, []string{"system:nodes"}, nil, nil)
	if err != nil {
		return err
	}
	serving, err := issue("kubelet-serving", "system:node:"+NodeName, []string{"system:nodes"},
		[]net.IP{net.IPv4(127, 0, 0, 1)}, []string{NodeName, "localhost"})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.Dir, "kubelet.kubeconfig")
	if err := writeKubeconfig(kubeconfig, c.Config.Host, c.CAPEM, client); err != nil {
		return err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	n.CgroupParent = "/cloister-kubetest-" + hex.EncodeToString(id[:])
	if n.cgroups, err = makeCgroup(n.CgroupParent); err != nil {
		return err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return err
	}
	cfg := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"failCgroupV1":             false,
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               n.CgroupParent,
		"cgroupsPerQOS":            true,
		"containerRuntimeEndpoint": "unix://" + n.ContainerdSocket,
		"address":                  "127.0.0.1",
		"port":                     port,
		"readOnlyPort":             0,
		"healthzPort":              0,
		"tlsCertFile":              serving.certFile,
		"tlsPrivateKeyFile":        serving.keyFile,
		"rotateCertificates":       false,
		"serverTLSBootstrap":       false,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": c.CAFile},
		},
		"authorization":       map[string]any{"mode": "Webhook"},
		"registerNode":        true,
		"failSwapOn":          false,
		"resolvConf":          resolv,
		"podLogsDir":          filepath.Join(n.dir, "pods-logs"),
		"volumePluginDir":     filepath.Join(n.dir, "volume-plugins"),
		"serializeImagePulls": false,
		// Images are imported, never pulled: never collect them.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		// The test machine's disk and memory are shared with other tests: evict only when
		// truly out.
		"evictionHard": map[string]string{
			"memory.available":  "50Mi",
			"nodefs.available":  "1%",
			"nodefs.inodesFree": "1%",
			"imagefs.available": "1%",
		},
		"evictionPressureTransitionPeriod": "5s",
		"nodeStatusUpdateFrequency":        "2s",
		"nodeStatusReportFrequency":        "10s",
		"syncFrequency":                    "10s",
		"fileCheckFrequency":               "10s",
		"runtimeRequestTimeout":            "2m",
		"shutdownGracePeriod":              "0s",
		"localStorageCapacityIsolation":    true,
		"containerLogMaxSize":              "10Mi",
		"containerLogMaxFiles":             2,
		"maxPods":                          110,
		// The kubelet's own score; lowering it needs CAP_SYS_RESOURCE, which these machines deny.
		"oomScoreAdj": 0,
		"logging":     map[string]any{"verbosity": 1},
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(n.dir, "kubelet.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	p, err := startProcess(c.logDir, "kubelet", c.bins.Kubelet, []string{
		"--config=" + cfgPath,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(n.dir, "kubelet"),
		"--cert-dir=" + filepath.Join(n.dir, "kubelet/pki"),
		"--hostname-override=" + NodeName,
		// The kubelet refuses a loopback node IP when it sets the node's addresses (it logs
		// "nodeIP can't be loopback address" and leaves them alone), but with this flag it
		// never picks another interface's address: WaitNodeReady sets 127.0.0.1.
		"--node-ip=127.0.0.1",
	}, minimalEnv())
	if err != nil {
		return err
	}
	n.kubelet = p
	return nil
}

// setAddress sets the node's InternalIP to 127.0.0.1 if it has no address: the API server
// reaches the kubelet (logs, exec, port-forward) at that address.
func (n *Node) setAddress(ctx context.Context, cs kubernetes.Interface, node *corev1.Node) error {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if a.Address != "127.0.0.1" {
				return fmt.Errorf("node %s has InternalIP %s; expected 127.0.0.1", node.Name, a.Address)
			}
			return nil
		}
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"addresses": []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: NodeName},
	}}})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// nodeReady reports whether the node is Ready, and if not, why.
func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}

// stopNode stops the kubelet, kills every pod's processes and the containerd shims, stops
// containerd, unmounts what they mounted and removes the pods' cgroups.
func (c *Cluster) stopNode() error {
	n := c.Node
	if n == nil {
		n = c.pendingNode
	}
	if n == nil {
		return nil
	}
	var errs []error
	if n.kubelet != nil {
		if err := n.kubelet.stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if n.CgroupParent != "" {
		mp := cgroupMount("pids")
		if mp == "" {
			mp = cgroupMount("unified")
		}
		if err := killCgroupTree(filepath.Join(mp, n.CgroupParent), 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// The shims run in process groups of their own; their command lines name the socket.
	if err := killMatching(10*time.Second, "containerd-shim", n.ContainerdSocket); err != nil {
		errs = append(errs, err)
	}
	if err := n.containerd.stop(stopGrace); err != nil {
		errs = append(errs, err)
	}
	if err := unmountBelow(n.dir); err != nil {
		errs = append(errs, err)
	}
	for i := len(n.cgroups) - 1; i >= 0; i-- {
		if err := removeCgroup(n.cgroups[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cniPluginDir is where Debian's containernetworking-plugins puts the CNI plugins.
const cniPluginDir = "/usr/lib/cni"

// cgroupMounts returns the mount points of the cgroup v1 hierarchies and of the unified
// (cgroup v2) hierarchy, from /proc/self/mountinfo.
func cgroupMounts() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup":
			for opt := range strings.SplitSeq(g[2], ",") {
				switch {
				case opt == "rw" || opt == "ro" || strings.HasPrefix(opt, "release_agent") || opt == "relatime" || opt == "clone_children" || opt == "noprefix":
				case strings.HasPrefix(opt, "name="):
					m[opt] = unescapeMount(f[4])
				default:
					m[opt] = unescapeMount(f[4])
				}
			}
		case "cgroup2":
			m["unified"] = unescapeMount(f[4])
		}
	}
	return m, nil
}

// cgroupMount returns the mount point of the v1 hierarchy with controller, or "".
func cgroupMount(controller string) string {
	m, err := cgroupMounts()
	if err != nil {
		return ""
	}
	return m[controller]
}

// makeCgroup creates the cgroup path in every hierarchy (the kubelet requires its cgroup
// root to exist in each) and returns the directories it made. A new cpuset cgroup gets its
// parent's CPUs and memory nodes, without which no process can join it.
func makeCgroup(path string) ([]string, error) {
	m, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, errors.New("no cgroup hierarchy mounted")
	}
	var made []string
	seen := map[string]bool{}
	for ctrl, mp := range m {
		d := filepath.Join(mp, path)
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := os.Mkdir(d, 0o755); err != nil {
			return made, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		made = append(made, d)
		if ctrl == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(mp, f))
				if err != nil {
					return made, err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return made, fmt.Errorf("set %s of %s: %w", f, d, err)
				}
			}
		}
	}
	return made, nil
}

// removeCgroup removes a cgroup directory and every cgroup below it, deepest first.
func removeCgroup(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		var rmErr error
		for try := 0; try < 50; try++ { // a cgroup is busy for a moment after its last process
			if rmErr = os.Remove(dirs[i]); rmErr == nil || errors.Is(rmErr, os.ErrNotExist) {
				rmErr = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if rmErr != nil {
			errs = append(errs, fmt.Errorf("remove cgroup: %w", rmErr))
		}
	}
	return errors.Join(errs...)
}

// nodeLockFile serialises nodes on a machine. A kubelet keeps its device-plugin registration
// socket at a fixed path (/var/lib/kubelet/device-plugins/kubelet.sock, whatever its root
// directory) and sets machine-wide kernel parameters, so two nodes at once would take each
// other's device plugins. Control planes alone run in parallel.
var nodeLockFile = filepath.Join(os.TempDir(), "cloister-kubetest-node.lock")

// nodeLockWait bounds how long a node waits for another test's node to stop.
const nodeLockWait = 15 * time.Minute

// lockNode takes the machine's node lock, waiting for another process's node if there is one,
// and returns its release.
func lockNode(ctx context.Context, logf func(string, ...any)) (func(), error) {
	f, err := os.OpenFile(nodeLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, nodeLockWait)
	defer cancel()
	waited := false
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if waited {
				logf("kubetest: waited %v for another test's node", time.Since(start).Round(time.Millisecond))
			}
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", nodeLockFile, err)
		}
		if !waited {
			logf("kubetest: another test process runs a node (%s is locked); waiting for it, at most %v", nodeLockFile, nodeLockWait)
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another test's node still holds %s after %v", nodeLockFile, time.Since(start).Round(time.Second))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
