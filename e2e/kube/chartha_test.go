package kube

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/sgx/sim"
)

const haNamespace = "cloister-ha"

// TestChartHA installs the chart with two Coordinator replicas on the kubernetes state and runs
// the replicas exactly as its Deployment says, with exactly the RBAC it grants:
//  1. `cloister install --simulation --set coordinator.replicas=2 --set coordinator.state=kubernetes`
//     on a real API server: every object (PDB, Role, headless Service, spread) is accepted;
//  2. the API server's own authorizer (SubjectAccessReview) allows the Coordinator's
//     ServiceAccount exactly the Role's verbs in its namespace, and nothing else;
//  3. replica 0 runs with the Deployment's arguments, as that ServiceAccount (a token from the
//     TokenRequest API): it creates the deployment in the state Secrets; a manifest is set and
//     workloads activate;
//  4. with the peer key sharing of issue 10 item 2 in the binary (`--peer-addr`): replica 1
//     starts on a new simulated CPU, gets the data key from replica 0 through the peers
//     Service's EndpointSlice, and serves the same deployment; replica 0 is killed and
//     activations go on through replica 1; replica 0 comes back on another new CPU and serves.
//
// The replicas are processes on the host, not pods: on internal/kubetest's node pods have no
// network but their loopback (they cannot reach the API server or each other), and two
// host-network replicas on its one node would need the same host ports, which the scheduler
// refuses. The pods' view of the API (service account, Role, EndpointSlices of the peers
// Service) is reproduced exactly; TestInstall covers the chart's pods on the node.
func TestChartHA(t *testing.T) {
	c := kubetest.Start(t)
	env := e2etest.New(t)
	ctx := t.Context()
	kube := []string{"--kubeconfig", c.Kubeconfig, "--namespace", haNamespace}
	simDir := env.Path("sim")

	// 1. Install (no --wait: this cluster has no node to run the pods).
	out := longCLI(t, env, 2*time.Minute, append([]string{"install", "--simulation", "--sim-dir", simDir,
		"--set", "coordinator.replicas=2", "--set", "coordinator.state=kubernetes", "--set", "injector.enabled=false"}, kube...)...)
	for _, want := range []string{"Coordinator: 2 replicas, state backend kubernetes", "PodDisruptionBudget cloister"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	d, err := c.Client.AppsV1().Deployments(haNamespace).Get(ctx, "cloister", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1 ||
		len(d.Spec.Template.Spec.TopologySpreadConstraints) != 1 {
		t.Errorf("stored Deployment: %d replicas, strategy %+v, spread %+v", *d.Spec.Replicas, d.Spec.Strategy, d.Spec.Template.Spec.TopologySpreadConstraints)
	}
	pdb, err := c.Client.PolicyV1().PodDisruptionBudgets(haNamespace).Get(ctx, "cloister", metav1.GetOptions{})
	if err != nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("stored PDB %+v: %v; want maxUnavailable 1", pdb, err)
	}
	peers, err := c.Client.CoreV1().Services(haNamespace).Get(ctx, "cloister-peers", metav1.GetOptions{})
	if err != nil || peers.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("stored peers Service %+v: %v; want headless", peers, err)
	}

	// 2. Least privilege, as the API server decides it.
	sa := "system:serviceaccount:" + haNamespace + ":cloister"
	for _, tc := range []struct {
		ns, group, resource, verb string
		allowed                   bool
	}{
		{haNamespace, "", "secrets", "get", true}, {haNamespace, "", "secrets", "list", true},
		{haNamespace, "", "secrets", "create", true}, {haNamespace, "", "secrets", "update", true},
		{haNamespace, "", "secrets", "delete", true},
		{haNamespace, "discovery.k8s.io", "endpointslices", "list", true},
		{haNamespace, "discovery.k8s.io", "endpointslices", "get", false}, {haNamespace, "discovery.k8s.io", "endpointslices", "watch", false},
		{haNamespace, "", "secrets", "watch", false}, {haNamespace, "", "secrets", "patch", false},
		{haNamespace, "", "secrets", "deletecollection", false}, {"default", "", "secrets", "get", false},
		{haNamespace, "discovery.k8s.io", "endpointslices", "create", false}, {haNamespace, "", "configmaps", "get", false},
		{haNamespace, "", "pods", "list", false}, {haNamespace, "", "serviceaccounts", "create", false},
		{haNamespace, "rbac.authorization.k8s.io", "roles", "update", false}, {"", "", "nodes", "get", false},
	} {
		r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + haNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: tc.ns, Group: tc.group, Resource: tc.resource, Verb: tc.verb},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != tc.allowed {
			t.Errorf("%s may %s %s.%s in %q: %v, want %v (%s)", sa, tc.verb, tc.resource, tc.group, tc.ns, r.Status.Allowed, tc.allowed, r.Status.Reason)
		}
	}

	// 3. Replica 0, as the ServiceAccount, with the Deployment's arguments.
	tok, err := c.Client.CoreV1().ServiceAccounts(haNamespace).CreateToken(ctx, "cloister",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saKubeconfig := env.Path("coordinator.kubeconfig")
	writeTokenKubeconfig(t, saKubeconfig, c, tok.Status.Token)
	platform, err := sim.Load(simDir)
	if err != nil {
		t.Fatal(err)
	}
	hasPeers := coordinatorHasFlag(t, env.Bins.Cloister, "--peer-addr")
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--state=kubernetes", "--state-namespace=" + haNamespace, "--state-name=cloister-state", "--peer-addr=:2002", "--peer-service=cloister-peers"} {
		if !slices.Contains(args, want) {
			t.Fatalf("Deployment args %q lack %s", args, want)
		}
	}
	r0 := startChartReplica(t, env, "replica-0", args, simDir, saKubeconfig, hasPeers)
	expect := client.ExpectSimulated(platform.Root())
	v, err := client.Verify(ctx, r0.addrs.Client, expect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(r0.addrs.Client, v.Root).SetManifest(ctx, loadgen.Manifest("web")); err != nil {
		t.Fatal(err)
	}
	if n := activateOn(t, r0, platform, 20); n != 20 {
		t.Errorf("%d of 20 activations through replica 0 succeeded", n)
	}
	state, err := c.Client.CoreV1().Secrets(haNamespace).List(ctx, metav1.ListOptions{LabelSelector: "cloister.dev/state=cloister-state"})
	if err != nil || len(state.Items) == 0 {
		t.Fatalf("state Secrets labelled cloister.dev/state=cloister-state: %v, %v; want the state written as the ServiceAccount", state, err)
	}

	if !hasPeers {
		t.Skip("steps 1-3 passed; the Coordinator binary has no --peer-addr (peer key sharing, issue 10 item 2, is not in this build): skipping the second replica on a new CPU")
	}

	// 4. Replica 1 on a new CPU gets the key from replica 0 through the peers Service.
	if !coordinatorHasFlag(t, env.Bins.Cloister, "--peer-dial-host") {
		t.Fatal("the Coordinator has --peer-addr but no --peer-dial-host: this harness cannot list a loopback peer in an EndpointSlice (the API server refuses loopback addresses)")
	}
	publishPeer(t, c, r0, 1)
	r1 := startChartReplica(t, env, "replica-1", args, simDir, saKubeconfig, true)
	publishPeer(t, c, r1, 2)
	v1, err := client.Verify(ctx, r1.addrs.Client, expect)
	if err != nil {
		t.Fatalf("verify replica 1: %v\n%s", err, r1.out)
	}
	if !v1.Root.Equal(v.Root) {
		t.Fatal("replica 1 serves another deployment root than replica 0")
	}
	if n := activateOn(t, r1, platform, 20); n != 20 {
		t.Errorf("%d of 20 activations through replica 1 succeeded", n)
	}

	// Replica 0 goes, as a deleted pod does; replica 1 keeps serving.
	r0.kill()
	unpublishPeer(t, c, r0)
	if n := activateOn(t, r1, platform, 20); n != 20 {
		t.Errorf("with replica 0 gone, %d of 20 activations through replica 1 succeeded", n)
	}
	// It comes back as a new pod does: a new data directory, a new CPU, the key from replica 1.
	r0 = startChartReplica(t, env, "replica-0-again", args, simDir, saKubeconfig, true)
	publishPeer(t, c, r0, 3)
	if n := activateOn(t, r0, platform, 20); n != 20 {
		t.Errorf("%d of 20 activations through the replaced replica 0 succeeded", n)
	}
	// The shared count: replicas flush their unlimited counts every two seconds, and those
	// replica 0 had not flushed when it was killed are lost (docs/ha.md); the 60 activations
	// through the live replicas must all arrive.
	cl := client.New(r1.addrs.Client, v.Root)
	e2etest.WaitFor(t, 20*time.Second, "the live replicas' activations in the shared count", func() (bool, string) {
		st, err := cl.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Activations["web"] >= 60, fmt.Sprintf("%d activations of web", st.Activations["web"])
	})
}

// chartReplica is one Coordinator process started with the chart's arguments.
type chartReplica struct {
	proc
	addrs    e2etest.Addrs
	peerPort int
}

func (r *chartReplica) kill() {
	r.cmd.Process.Kill()
	<-r.done
}

// startChartReplica runs `cloister coordinator` with the Deployment's arguments, changed only
// where a pod and a host process differ: loopback addresses on free ports (and an address file
// to learn them), the simulated platform's directory instead of /sim, an empty data directory
// of its own (the pod's emptyDir: a new simulated CPU) and the ServiceAccount's kubeconfig.
func startChartReplica(t *testing.T, env *e2etest.Env, name string, chartArgs []string, simDir, kubeconfig string, peers bool) *chartReplica {
	t.Helper()
	dir := env.Path(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &chartReplica{proc: newProc(name), peerPort: freePort(t)}
	addrFile := filepath.Join(dir, "addrs.json")
	args := []string{"coordinator"}
	for _, a := range chartArgs {
		switch flag, _, _ := strings.Cut(a, "="); flag {
		case "--client-addr", "--mesh-addr":
			args = append(args, flag+"=127.0.0.1:0")
		case "--simulation":
			args = append(args, flag+"="+simDir)
		case "--peer-addr":
			if peers {
				args = append(args, fmt.Sprintf("%s=127.0.0.1:%d", flag, r.peerPort))
			}
		case "--peer-service":
			if peers {
				// The slices list documentation addresses; dial their ports on loopback.
				args = append(args, a, "--peer-dial-host=127.0.0.1")
			}
		case "--log-level":
			args = append(args, "--log-level=warn")
		default:
			args = append(args, a)
		}
	}
	args = append(args, "--data-dir="+filepath.Join(dir, "data"), "--addr-file="+addrFile, "--kubeconfig="+kubeconfig)
	r.run(t, env.Bins.Cloister, dir, args...)
	e2etest.WaitFor(t, e2etest.StartTimeout, r.name+" to serve", func() (bool, string) {
		select {
		case <-r.done:
			t.Fatalf("%s exited while starting (%v):\n%s", r.name, r.cmd.ProcessState, r.out)
		default:
		}
		b, err := os.ReadFile(addrFile)
		if err != nil {
			return false, "no address file yet"
		}
		if err := json.Unmarshal(b, &r.addrs); err != nil {
			t.Fatalf("%s: address file %q: %v", r.name, b, err)
		}
		return true, ""
	})
	return r
}

// activateOn runs n activations of the load generator's workload "web" through r's workload
// API and returns how many succeeded.
func activateOn(t *testing.T, r *chartReplica, p *sim.Platform, n int) int {
	t.Helper()
	res, err := loadgen.Run(t.Context(), loadgen.Config{Mesh: r.addrs.Mesh, Platform: p, Expect: client.ExpectSimulated(p.Root()),
		Workload: "web", N: n, Concurrency: 4})
	if res == nil {
		t.Fatalf("activations through %s: %v\n%s", r.name, err, r.out)
	}
	if res.FirstErr != nil {
		t.Logf("activations through %s: first error: %v", r.name, res.FirstErr)
	}
	return len(res.Latencies)
}

// publishPeer lists r's peer port in an EndpointSlice of the Service cloister-peers, as the
// EndpointSlice controller does for a ready pod (there is no kubelet here, so the test does
// it): one slice per replica, since each listens on its own port. The API server refuses
// loopback addresses (and one-label names such as localhost) in a slice, so the replica is
// listed under a documentation address, 192.0.2.N, never dialed: the replicas run with
// --peer-dial-host 127.0.0.1, which keeps the slice's port and dials loopback.
func publishPeer(t *testing.T, c *kubetest.Cluster, r *chartReplica, n int) {
	t.Helper()
	port := int32(r.peerPort)
	_, err := c.Client.DiscoveryV1().EndpointSlices(haNamespace).Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cloister-peers-" + r.name, Labels: map[string]string{discoveryv1.LabelServiceName: "cloister-peers"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("192.0.2.%d", n)}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("peer"), Port: &port, Protocol: new(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("publish %s in the peers Service: %v", r.name, err)
	}
}

func unpublishPeer(t *testing.T, c *kubetest.Cluster, r *chartReplica) {
	t.Helper()
	if err := c.Client.DiscoveryV1().EndpointSlices(haNamespace).Delete(t.Context(), "cloister-peers-"+r.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// coordinatorHasFlag reports whether `cloister coordinator` takes flag: cobra refuses an
// unknown flag even with --help, and this sees hidden flags too.
func coordinatorHasFlag(t *testing.T, bin, flag string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "coordinator", flag+"=x", "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "unknown flag: "+flag) {
		t.Fatalf("cloister coordinator %s=x --help: %v\n%s", flag, err, out)
	}
	return err == nil
}

// writeTokenKubeconfig writes a kubeconfig for the cluster's API server authenticating with a
// bearer token, as a pod's service account does.
func writeTokenKubeconfig(t *testing.T, path string, c *kubetest.Cluster, token string) {
	t.Helper()
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: coordinator
  user:
    token: %s
contexts:
- name: coordinator
  context: {cluster: kubetest, user: coordinator}
current-context: coordinator
`, c.Config.Host, c.CAFile, token)
	e2etest.WriteFile(t, path, []byte(kc), 0o600)
}

// TestChartHANode runs the chart's Coordinator on the kubernetes state as a pod on a real
// kubelet and containerd node, and shows that readiness means "activates workloads":
//  1. `cloister install --simulation --set coordinator.state=kubernetes --wait`: the pod
//     creates the state in Secrets as the chart's ServiceAccount (token mounted, Role) and
//     gets ready; a manifest is set through a port-forward and workloads activate;
//  2. the pod is deleted; its replacement is a new CPU (emptyDir) with no peer to ask for the
//     data key (the only replica is gone), so it waits in recovery mode: it runs and answers
//     its status (started), but is NOT ready, so the Service sends it no workload and the
//     peers Service does not list it; `cloister check` says why, and `cloister status`
//     still reaches it through a port-forward and says it is in recovery mode.
//
// One replica: on this node pods have no network but loopback, so the Coordinator runs on the
// host network, where two replicas would need the same ports (TestChartHA runs two replicas
// as processes). Needs peer key sharing (issue 10 item 2) in the binary: the chart passes
// --peer-addr and --peer-service with the kubernetes state.
func TestChartHANode(t *testing.T) {
	env := e2etest.New(t)
	if !coordinatorHasFlag(t, env.Bins.Cloister, "--peer-addr") {
		t.Skip("the Coordinator binary has no --peer-addr (peer key sharing, issue 10 item 2, is not in this build); the chart passes it with coordinator.state kubernetes")
	}
	c := kubetest.Start(t, kubetest.WithNode())
	ctx := t.Context()
	dir := env.Path("kube")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := coordinatorImage(t, env, c, dir, filepath.Join(dir, "signer.pem"))
	kube := []string{"--kubeconfig", c.Kubeconfig, "--namespace", haNamespace}
	simDir := filepath.Join(dir, "sim")
	meshPort := freePort(t)
	out := longCLI(t, env, 4*time.Minute, append([]string{"install", "--simulation", "--sim-dir", simDir, "--wait", "--timeout", "3m",
		"--set", "image.repository=localhost/cloister-e2e/coordinator", "--set", "image.tag=kube", "--set", "image.pullPolicy=Never",
		"--set", "coordinator.state=kubernetes", "--set", "coordinator.hostNetwork=true", "--set", "coordinator.listenAddress=127.0.0.1",
		"--set", fmt.Sprintf("coordinator.clientPort=%d", freePort(t)), "--set", fmt.Sprintf("coordinator.meshPort=%d", meshPort),
		"--set", fmt.Sprintf("coordinator.peerPort=%d", freePort(t)), "--set", "coordinator.address=127.0.0.1",
		"--set", "coordinator.apiServer=" + strings.TrimPrefix(c.Config.Host, "https://"),
		"--set", "coordinator.probes.readiness.periodSeconds=1", "--set", "injector.enabled=false"}, kube...)...)
	if !strings.Contains(out, "Coordinator: 1 replica, state backend kubernetes") {
		t.Errorf("install output:\n%s", out)
	}

	// 1. Ready, serving from the Secrets.
	env.MustCLI(t, append([]string{"verify", "--simulation", simDir, "--mrenclave", img.MREnclaveSimulation}, kube...)...)
	// With a recovery key holder: a Coordinator that cannot get the data key then waits for
	// recovery (without one it could never be recovered, and exits saying so).
	var m map[string]any
	if err := json.Unmarshal(loadgen.Manifest("web"), &m); err != nil {
		t.Fatal(err)
	}
	holder, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(holder.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	m["governance"] = map[string]any{"recovery": map[string]any{"threshold": 1, "keys": map[string]any{
		"ada": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}}
	e2etest.WriteJSON(t, env.Path("manifest.json"), m)
	env.MustCLI(t, append([]string{"manifest", "set", env.Path("manifest.json"), "--recovery-shares", env.Path("shares")}, kube...)...)
	platform, err := sim.Load(simDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(ctx, loadgen.Config{Mesh: fmt.Sprintf("127.0.0.1:%d", meshPort), Platform: platform,
		Expect: client.ExpectSimulated(platform.Root()), Workload: "web", N: 10, Concurrency: 2})
	if res == nil || len(res.Latencies) != 10 {
		t.Fatalf("activations through the pod: %+v, %v; want 10", res, err)
	}
	if s, err := c.Client.CoreV1().Secrets(haNamespace).Get(ctx, "cloister-state", metav1.GetOptions{}); err != nil || s.Labels["cloister.dev/state"] != "cloister-state" {
		t.Fatalf("state Secret cloister-state: %v; want it written by the pod", err)
	}
	old := coordinatorPods(t, c)
	if len(old) != 1 {
		t.Fatalf("Coordinator pods %v; want one", old)
	}

	// 2. A new CPU with no peer: recovery mode, started, not ready.
	if err := c.Client.CoreV1().Pods(haNamespace).Delete(ctx, old[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 2*time.Minute, "the replacement pod to start in recovery mode", func() (bool, string) {
		for _, p := range coordinatorPods(t, c) {
			if p.Name == old[0].Name || len(p.Status.ContainerStatuses) == 0 {
				continue
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.Started != nil && *cs.Started {
				return true, ""
			}
			if term := cs.LastTerminationState.Terminated; term != nil {
				logs, _ := c.Client.CoreV1().Pods(haNamespace).GetLogs(p.Name, &corev1.PodLogOptions{Previous: true}).DoRaw(ctx)
				return false, fmt.Sprintf("pod %s: exited with %d: %s", p.Name, term.ExitCode, logs)
			}
			return false, fmt.Sprintf("pod %s: %+v", p.Name, cs.State)
		}
		return false, "no replacement pod yet"
	})
	// It stays not ready over several readiness periods (1s each).
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		for _, p := range coordinatorPods(t, c) {
			if p.Name != old[0].Name && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready {
				t.Fatalf("pod %s without the data key (recovery mode) is ready", p.Name)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	chk := env.CLI(t, append([]string{"check", "--timeout", "5s"}, kube...)...)
	if chk.Code != 1 || !strings.Contains(chk.Stdout, "serves but is not ready: it refuses workloads (recovery mode") {
		t.Errorf("check of a Coordinator in recovery mode: %v\nwant exit 1 and why it is not ready", chk)
	}
	st := env.CLI(t, append([]string{"status"}, kube...)...)
	if st.Code == 0 || !strings.Contains(st.String(), "recovery") {
		t.Errorf("status of a Coordinator in recovery mode through a port-forward: %v\nwant it reached, and refused as in recovery mode", st)
	}
	env.MustCLI(t, append([]string{"uninstall"}, kube...)...)
}

// coordinatorPods lists the pods of the Coordinator in haNamespace.
func coordinatorPods(t *testing.T, c *kubetest.Cluster) []corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(haNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=cloister,app.kubernetes.io/component=coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}
