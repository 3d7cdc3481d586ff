package kube

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/injector"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/pki"
)

const (
	namespace      = "cloister-e2e"
	coordinatorRef = "localhost/cloister-e2e/coordinator:kube"
	redisRef       = "localhost/cloister-e2e/redis:kube"
)

// TestInstall is the Kubernetes path of docs/kubernetes.md on a real cluster with a node:
//  1. build the Coordinator image (`cloister image coordinator` of cloister-coordinator) and a confidential Redis
//     (`cloister image convert` of Debian's redis-server), import both into containerd;
//  2. `cloister install --simulation --wait` (a PersistentVolume for the state claim), timed;
//  3. `cloister check` says the Coordinator and the injector ready, and simulation;
//  4. `cloister verify` and `manifest set` through port-forwards (--kubeconfig, --namespace);
//  5. a pod with only the label cloister.dev/workload=redis comes back from the API server
//     mutated by the chart's webhook (CLOISTER_* settings, the simulated platform), activates
//     and serves TLS with a certificate of the deployment's root, read and written through a
//     port-forward;
//  6. `cloister uninstall` removes every object install made but the state claim it keeps.
//
// Service IPs route nowhere on this node: the Coordinator and the injector run on the host
// network, the API server calls the webhook by URL (injector.url) and the injector reaches
// the API server and the Coordinator on 127.0.0.1 (injector.apiServer, coordinator.address).
func TestInstall(t *testing.T) {
	c := kubetest.Start(t, kubetest.WithNode())
	env := e2etest.New(t)
	ctx := t.Context()
	kubetest.Require(t, e2etest.File(redisBin, "apt-get install redis-server"), e2etest.Program("ldd", "apt-get install libc-bin"))
	dir := env.Path("kube")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kube := []string{"--kubeconfig", c.Kubeconfig, "--namespace", namespace}

	// 1. Images.
	key := filepath.Join(dir, "signer.pem")
	coordImg := coordinatorImage(t, env, c, dir, key)
	redisArchive := filepath.Join(dir, "redis.tar")
	var redis jsonoutput.ImageConvert
	mustJSON(t, longCLI(t, env, 3*time.Minute, "image", "convert", redisSource(t, filepath.Join(dir, "redis-src")),
		"docker-archive:"+redisArchive+":"+redisRef, "--launcher", env.Bins.Launcher, "--sign-key", key,
		"--isvprodid", "1", "--output", "json"), &redis)
	if err := c.Node.ImportImage(ctx, redisArchive); err != nil {
		t.Fatal(err)
	}

	// 2. A volume for the state claim (the cluster has no provisioner), then install. The
	// Coordinator runs on the host network: pods have no network of their own here.
	stateDir := filepath.Join(c.Dir, "coordinator-state")
	if err := os.Mkdir(stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(stateDir, 0o777)
	_, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "cloister-e2e-state"},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              "cloister-e2e",
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: stateDir}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clientPort, meshPort, redisPort := freePort(t), freePort(t), freePort(t)
	webhookPort, healthPort := freePort(t), freePort(t)
	simDir := filepath.Join(dir, "sim")
	installArgs := append([]string{"install", "--simulation", "--sim-dir", simDir, "--wait", "--timeout", "3m",
		"--set", "image.repository=localhost/cloister-e2e/coordinator", "--set", "image.tag=kube", "--set", "image.pullPolicy=Never",
		"--set", "coordinator.hostNetwork=true", "--set", "coordinator.listenAddress=127.0.0.1",
		"--set", fmt.Sprintf("coordinator.clientPort=%d", clientPort), "--set", fmt.Sprintf("coordinator.meshPort=%d", meshPort),
		"--set", "coordinator.persistence.storageClass=cloister-e2e", "--set", "coordinator.address=127.0.0.1",
		// Service IPs route nowhere here: the API server calls the webhook on the host network.
		"--set", "injector.hostNetwork=true", "--set", fmt.Sprintf("injector.port=%d", webhookPort),
		"--set", fmt.Sprintf("injector.healthPort=%d", healthPort),
		"--set", "injector.apiServer=" + strings.TrimPrefix(c.Config.Host, "https://"),
		"--set", fmt.Sprintf("injector.url=https://127.0.0.1:%d/mutate", webhookPort)}, kube...)
	start := time.Now()
	out := longCLI(t, env, 4*time.Minute, installArgs...)
	installTook := time.Since(start)
	t.Logf("cloister install --simulation --wait: Coordinator ready %v after the command started", installTook.Round(time.Millisecond))
	for _, want := range []string{"SIMULATION MODE: NOTHING IS PROTECTED", "revision 1", "deployed"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}

	// 3. check.
	res := env.MustCLI(t, append([]string{"check", "--timeout", "1m", "--output", "json"}, kube...)...)
	var chk jsonoutput.Check
	mustJSON(t, res.Stdout, &chk)
	if !chk.Ready || !chk.Simulation || len(chk.Parts) != 2 {
		t.Errorf("check: %+v; want the Coordinator and the injector ready, in simulation", chk)
	}

	// 4. verify and manifest set, through port-forwards.
	env.MustCLI(t, append([]string{"verify", "--simulation", simDir, "--mrenclave", coordImg.MREnclaveSimulation}, kube...)...)
	roots, _ := filepath.Glob(filepath.Join(env.ConfigDir, "coordinators", "kube_*_"+namespace, "root.pem"))
	if len(roots) != 1 {
		t.Fatalf("pinned roots %v; want one under the cluster and namespace", roots)
	}
	rootPEM, err := os.ReadFile(roots[0])
	if err != nil {
		t.Fatal(err)
	}
	manifest := map[string]any{
		"settings": map[string]any{"trust_domain": "kube.e2e.test"},
		"packages": map[string]any{"redis": map[string]any{"mrsigner": redis.MRSigner, "isvprodid": 1, "min_isvsvn": 1}},
		"workloads": map[string]any{"redis": map[string]any{
			"package": "redis",
			"tls":     map[string]any{"dns": []string{"redis.e2e"}},
			"files": map[string]string{
				"/etc/redis/redis.conf":     fmt.Sprintf("port 0\nbind 127.0.0.1\ntls-port %d\ntls-cert-file /etc/redis/tls/server.pem\ntls-key-file /etc/redis/tls/server.key\ntls-ca-cert-file /etc/redis/tls/ca.pem\ntls-auth-clients no\nsave \"\"\nappendonly no\n", redisPort),
				"/etc/redis/tls/server.pem": "{{.Workload.Chain}}",
				"/etc/redis/tls/server.key": "{{.Workload.Key}}",
				"/etc/redis/tls/ca.pem":     "{{.CA.Root}}",
			},
		}},
	}
	e2etest.WriteJSON(t, env.Path("manifest.json"), manifest)
	env.MustCLI(t, append([]string{"manifest", "set", env.Path("manifest.json")}, kube...)...)

	// 5. The Redis workload: only the label; the injector adds the rest.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "redis", Namespace: namespace, Labels: map[string]string{"cloister.dev/workload": "redis"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers:  []corev1.Container{{Name: "redis", Image: redisRef, ImagePullPolicy: corev1.PullNever}},
		},
	}
	created, err := c.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkInjected(t, created, meshPort)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := c.Client.CoreV1().Pods(namespace).GetLogs("redis", &corev1.PodLogOptions{}).DoRaw(context.Background())
			t.Logf("log of pod redis:\n%s", b)
		}
	})
	e2etest.WaitFor(t, 2*time.Minute, "the Redis pod to activate and listen", func() (bool, string) {
		p, err := c.Client.CoreV1().Pods(namespace).Get(ctx, "redis", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Status.Phase != corev1.PodRunning {
			return false, string(p.Status.Phase)
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort), time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})

	// Through a port-forward, a client trusting only the deployment's root writes and reads.
	fwdCtx, stopFwd := context.WithCancel(ctx)
	defer stopFwd()
	addr, err := c.PortForward(fwdCtx, namespace, "redis", redisPort)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.ParseCertsPEM(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root[0])
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "redis.e2e"})
	if err != nil {
		t.Fatalf("TLS to Redis through the port-forward, trusting the deployment root: %v", err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	value := "confidential on kubernetes " + time.Now().Format(time.RFC3339Nano)
	if got := redisCmd(t, conn, r, "SET", "k", value); got != "+OK" {
		t.Errorf("SET: %q", got)
	}
	if got := redisCmd(t, conn, r, "GET", "k"); got != value {
		t.Errorf("GET: %q, want %q", got, value)
	}
	conn.Close()
	stopFwd()
	if err := c.Client.CoreV1().Pods(namespace).Delete(ctx, "redis", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Upgrade: install again (values kept, one changed); the Coordinator is replaced and finds
	// its state on the volume: same pinned root, the manifest and the activation still there.
	start = time.Now()
	out = longCLI(t, env, 4*time.Minute, append([]string{"install", "--set", "coordinator.logLevel=debug", "--wait", "--timeout", "3m"}, kube...)...)
	t.Logf("upgrade (cloister install on an existing release) ready after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "revision 2") {
		t.Errorf("second install did not upgrade:\n%s", out)
	}
	var st jsonoutput.Status
	mustJSON(t, env.MustCLI(t, append([]string{"status", "--output", "json"}, kube...)...).Stdout, &st)
	if st.ManifestVersion != 1 || !st.Simulation || st.Activations["redis"] != 1 {
		t.Errorf("status after the upgrade: %+v; want manifest version 1, simulation, one activation of redis", st)
	}

	// 6. uninstall: nothing of the release is left but the state claim.
	env.MustCLI(t, append([]string{"uninstall"}, kube...)...)
	e2etest.WaitFor(t, time.Minute, "the release's objects to go", func() (bool, string) {
		left := releaseObjects(ctx, t, c)
		return len(left) == 1 && left[0] == "PersistentVolumeClaim/cloister-state", fmt.Sprint(left)
	})

	// 7. Without simulation on a node without SGX, the Coordinator never becomes ready and
	// `cloister check` says why, in the Coordinator's own words.
	noSGX := []string{"--kubeconfig", c.Kubeconfig, "--namespace", namespace + "-nosgx"}
	longCLI(t, env, 2*time.Minute, append([]string{"install",
		"--set", "image.repository=localhost/cloister-e2e/coordinator", "--set", "image.tag=kube", "--set", "image.pullPolicy=Never",
		"--set", "sgx.devicePlugin=none", "--set", "coordinator.hostNetwork=true", "--set", "coordinator.listenAddress=127.0.0.1",
		"--set", fmt.Sprintf("coordinator.clientPort=%d", freePort(t)), "--set", fmt.Sprintf("coordinator.meshPort=%d", freePort(t)),
		"--set", "coordinator.persistence.enabled=false", "--set", "injector.enabled=false"}, noSGX...)...)
	res = env.CLI(t, append([]string{"check", "--timeout", "20s"}, noSGX...)...)
	if res.Code != 1 || !strings.Contains(res.Stdout, "coordinator  NOT ready") || !strings.Contains(res.Stdout, "no SGX") {
		t.Errorf("check of a Coordinator without SGX and without simulation: %v\nwant exit code 1 and the Coordinator's reason (no SGX)", res)
	}
	env.MustCLI(t, append([]string{"uninstall"}, noSGX...)...)
	t.Logf("install took %v", installTook.Round(time.Millisecond))
}

// coordinatorImage makes a signing key at key, builds the Coordinator image of
// cloister-coordinator (`cloister image coordinator`) as coordinatorRef and imports it into the
// node's containerd.
func coordinatorImage(t *testing.T, env *e2etest.Env, c *kubetest.Cluster, dir, key string) jsonoutput.ImageCoordinator {
	t.Helper()
	env.MustCLI(t, "image", "keygen", key)
	archive := filepath.Join(dir, "coordinator.tar")
	var img jsonoutput.ImageCoordinator
	mustJSON(t, env.MustCLI(t, "image", "coordinator", "--sign-key", key, "--binary", env.Bins.Coordinator, "--output", "json",
		"docker-archive:"+archive+":"+coordinatorRef).Stdout, &img)
	if err := c.Node.ImportImage(t.Context(), archive); err != nil {
		t.Fatal(err)
	}
	return img
}

// checkInjected checks that the API server returned the labelled pod mutated by the chart's
// webhook: the launcher's settings (the Coordinator on the host network, the workload, the
// pod's UID as instance, simulation) and the simulated platform from the chart's Secret.
func checkInjected(t *testing.T, p *corev1.Pod, meshPort int) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	for name, want := range map[string]string{
		"CLOISTER_COORDINATOR": fmt.Sprintf("127.0.0.1:%d", meshPort), "CLOISTER_WORKLOAD": "redis",
		"CLOISTER_TEE": "simulation", "CLOISTER_SIM_DIR": injector.SimMountPath,
	} {
		if env[name].Value != want {
			t.Errorf("injected %s = %q, want %q (env %+v)", name, env[name].Value, want, p.Spec.Containers[0].Env)
		}
	}
	if f := env["CLOISTER_INSTANCE"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.uid" {
		t.Errorf("injected CLOISTER_INSTANCE %+v; want the pod's UID", env["CLOISTER_INSTANCE"])
	}
	if !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "cloister-simulation" }) {
		t.Errorf("volumes %+v; want the chart's Secret cloister-simulation", p.Spec.Volumes)
	}
}

// releaseObjects lists the namespaced and cluster objects labelled with the release, and the
// webhook's certificate Secret.
func releaseObjects(ctx context.Context, t *testing.T, c *kubetest.Cluster) []string {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=cloister"}
	var out []string
	add := func(kind string, names ...string) {
		for _, n := range names {
			out = append(out, kind+"/"+n)
		}
	}
	cs := c.Client
	if l, err := cs.AppsV1().Deployments(namespace).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("Deployment", o.Name)
		}
	}
	if l, err := cs.CoreV1().Services(namespace).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("Service", o.Name)
		}
	}
	if l, err := cs.CoreV1().Secrets(namespace).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("Secret", o.Name)
		}
	}
	// The webhook's certificate Secret, which the webhook makes (not Helm): the garbage
	// collector deletes it with the webhook configuration that owns it.
	if l, err := cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=cloister-injector"}); err == nil {
		for _, o := range l.Items {
			add("Secret", o.Name)
		}
	}
	if l, err := cs.CoreV1().ServiceAccounts(namespace).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("ServiceAccount", o.Name)
		}
	}
	if l, err := cs.CoreV1().PersistentVolumeClaims(namespace).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("PersistentVolumeClaim", o.Name)
		}
	}
	if l, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=cloister"}); err == nil {
		for _, o := range l.Items {
			add("Pod", o.Name)
		}
	}
	if l, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("MutatingWebhookConfiguration", o.Name)
		}
	}
	if l, err := cs.RbacV1().ClusterRoles().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			add("ClusterRole", o.Name)
		}
	}
	return out
}

// redisCmd sends one command in RESP and returns the reply: a simple string with its "+", or a
// bulk string's content.
func redisCmd(t *testing.T, w net.Conn, r *bufio.Reader, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	w.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line
	}
	var n int
	fmt.Sscanf(line, "$%d", &n)
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
}

// longCLI runs the CLI with a longer deadline than e2etest's and returns its standard output.
func longCLI(t *testing.T, env *e2etest.Env, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Bins.Cloister, args...)
	cmd.Env = append(env.BaseEnv(), "CLOISTER_CONFIG_DIR="+env.ConfigDir)
	cmd.Dir = env.Dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cloister %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
