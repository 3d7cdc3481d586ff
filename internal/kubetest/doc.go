// Package kubetest runs a real Kubernetes cluster on loopback for tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, and optionally one node (containerd and a
// kubelet). Nothing is faked; every component is the released program.
//
// # Binaries
//
// etcd (3.4, package etcd-server), containerd (1.6), runc and the CNI loopback plugin come from
// Debian. kube-apiserver, kube-controller-manager, kube-scheduler and kubelet are built from the
// k8s.io/kubernetes module pinned in tools/kube/go.mod (a module of its own, so that the main
// module does not depend on k8s.io/kubernetes) by tools/kube/build.sh, into a cache directory
// shared by every test process on the machine ([Build]). A cold build takes about ten minutes
// on two cores and is done by the first [Start] that needs it; .ci/kube fills the cache ahead.
//
// # The cluster
//
// [Start] makes a CA and every certificate with crypto/x509, picks free ports on 127.0.0.1,
// and starts the components with their state and logs below a directory of the cluster's
// own ([Cluster.Dir]). The API server authorizes with Node,RBAC and runs the mutating and
// validating admission webhooks; a webhook may be served by the test itself on 127.0.0.1 with a
// certificate from [Cluster.ServingCert] and caBundle [Cluster.CAPEM]. The test gets an
// administrator's kubeconfig, rest.Config and clientset. When the test ends every process is
// stopped, what the node mounted is unmounted, its cgroups are removed and the directory is
// deleted; if the test failed, the last lines of every component's log are printed.
//
// # The node
//
// With [WithNode], containerd runs with its root, state, socket and CNI configuration below the
// cluster's directory, and a kubelet registers as [NodeName]. Pods run images imported with
// [Cluster.LoadImage] or [Node.ImportImage] (imagePullPolicy Never); nothing is ever pulled. The
// sandbox image [PauseImage] is built here from ./pause. These machines run cgroup v1, which the
// kubelet refuses since 1.35 unless its configuration sets failCgroupV1: false; it uses the
// cgroupfs driver with a cgroup root of its own per cluster. They also deny CAP_SYS_RESOURCE
// even to root, so no process may lower its oom_score_adj: runc fails every sandbox with
// "failed to update /proc/self/oom_score_adj: Permission denied" (seen by the kubelet as
// "can't get final child's PID from pipe: EOF") unless containerd runs with
// restrict_oom_score_adj, as here, and the kubelet with oomScoreAdj: 0.
//
// The controller manager runs every controller under its own identity (in system:masters)
// instead of a service account per controller: the cluster is usable five seconds sooner.
//
// # Networking: loopback only
//
// Nothing listens on or connects to an address outside 127.0.0.0/8. Consequences a test must
// know:
//   - A pod gets a network namespace with only its loopback interface; its IP in the API is
//     127.0.0.1 (a CNI plugin of this package reports it). Pods cannot reach each other, the
//     host or the API server; reach a pod's port with [Cluster.PortForward]. HTTP and TCP probes
//     dial 127.0.0.1 from the host, not the pod: use exec probes, or hostNetwork.
//   - A pod with hostNetwork shares the host's loopback: it reaches the API server and other
//     hostNetwork pods on 127.0.0.1, and the host reaches it.
//   - There is no kube-proxy and no DNS: Services get cluster IPs (10.0.0.0/24) that route
//     nowhere. Webhooks are configured by URL (https://127.0.0.1:PORT/...).
//   - The kubelet refuses 127.0.0.1 as its node IP but is given it anyway (so that it never picks
//     another interface's address), and [Start] sets the node's InternalIP to 127.0.0.1 itself;
//     the API server reaches the kubelet (logs, exec, port-forward) there.
//
// # Side effects on the machine
//
// The kubelet sets the kernel parameters it wants (vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...), writes symlinks into /var/log/containers, and listens for
// device plugins on /var/lib/kubelet/device-plugins/kubelet.sock whatever its root directory
// (a fixed path in the kubelet); containerd's shims keep sockets in /run/containerd/s. So only
// one node runs on a machine at a time: [Start] with [WithNode] waits for a lock that another
// test process's node holds. Everything else stays below the cluster's directory.
//
// # Skipping
//
// [Start] skips with -short. Missing prerequisites (root, etcd, containerd, runc, the CNI
// loopback plugin, cgroups, the go command) skip the test, or fail it with
// CLOISTER_REQUIRE_KUBE=1 or CLOISTER_REQUIRE_PODMAN=1 (as .ci/run sets); see [Require].
package kubetest
