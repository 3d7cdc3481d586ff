package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/sgx/sim"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// haCluster is N `cloister coordinator --state kubernetes` processes sharing one state in the
// API server of a real control plane.
type haCluster struct {
	kube     *kubetest.Cluster
	bins     *e2etest.Binaries
	dir      string
	platform *sim.Platform
	name     string // the state's Secret
	replicas []*haReplica
	starts   int
}

type haReplica struct {
	proc
	dataDir string
	addrs   haAddrs
}

// proc is a Coordinator process of a test, with its output.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func newProc(name string) proc {
	return proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
}

// haAddrs are a replica's addresses, its peer key exchange's included.
type haAddrs struct {
	e2etest.Addrs
	Peer string `json:"peer"`
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHA(t testing.TB, kube *kubetest.Cluster, name string, n int) *haCluster {
	t.Helper()
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "platform"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &haCluster{kube: kube, bins: e2etest.Bins(t), dir: dir, platform: p, name: name}
	for range n {
		h.add(t)
	}
	return h
}

// simSealKey is the simulated seal key in a simulated Coordinator's data directory: its "CPU".
const simSealKey = "simulation-seal.key"

// peerService is the Service whose EndpointSlices list the replicas' peer endpoints.
func (h *haCluster) peerService() string { return h.name + "-peers" }

// publish lists r's peer endpoint in an EndpointSlice of the peer Service, as the
// EndpointSlice controller would for a pod (there is no kubelet here, so the test does it):
// one slice per replica, since each listens on its own port. The API server refuses loopback
// addresses in a slice, so the replica is listed under a documentation address (192.0.2.x,
// never dialed) and the replicas run with --peer-dial-host 127.0.0.1, which keeps the slice's
// port and dials loopback.
func (h *haCluster) publish(t testing.TB, r *haReplica) {
	t.Helper()
	_, port, err := net.SplitHostPort(r.addrs.Peer)
	if err != nil {
		t.Fatalf("%s: peer address %q: %v", r.name, r.addrs.Peer, err)
	}
	p, _ := strconv.Atoi(port)
	ctx := context.Background()
	svc := h.peerService()
	if _, err := h.kube.Client.CoreV1().Services("default").Get(ctx, svc, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		_, err = h.kube.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: svc},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "peer", Port: 2002}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create Service %s: %v", svc, err)
		}
	}
	slices := h.kube.Client.DiscoveryV1().EndpointSlices("default")
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-" + r.name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("192.0.2.%d", h.starts)}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("peer"), Port: new(int32(p))}},
	}
	if old, err := slices.Get(ctx, slice.Name, metav1.GetOptions{}); err == nil {
		slice.ResourceVersion = old.ResourceVersion
		_, err = slices.Update(ctx, slice, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update EndpointSlice %s: %v", slice.Name, err)
		}
		return
	}
	if _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create EndpointSlice %s: %v", slice.Name, err)
	}
}

// add starts one more replica on a "new CPU": an empty data directory, so a simulated seal key
// of its own. The first creates the state and the data key; every other one gets the key from
// a running replica, found through the peer Service's EndpointSlices, by mutual attestation.
func (h *haCluster) add(t testing.TB) *haReplica {
	t.Helper()
	i := len(h.replicas)
	name := fmt.Sprintf("replica-%d", i)
	r := h.start(t, name, filepath.Join(h.dir, name))
	h.replicas = append(h.replicas, r)
	return r
}

// start starts a replica on dataDir.
func (h *haCluster) start(t testing.TB, name, dataDir string) *haReplica {
	t.Helper()
	h.starts++
	r := &haReplica{proc: newProc(name), dataDir: dataDir}
	addrFile := filepath.Join(h.dir, fmt.Sprintf("%s-%d-addrs.json", r.name, h.starts))
	r.run(t, h.bins.Cloister, h.dir, "coordinator",
		"--simulation", h.platform.Dir(), "--data-dir", r.dataDir,
		"--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--addr-file", addrFile, "--log-level", "warn",
		"--state", "kubernetes", "--state-namespace", "default", "--state-name", h.name, "--kubeconfig", h.kube.Kubeconfig,
		"--peer-addr", "127.0.0.1:0", "--peer-service", h.peerService(), "--peer-dial-host", "127.0.0.1")
	e2etest.WaitFor(t, e2etest.StartTimeout, r.name+" to write its address file", func() (bool, string) {
		if b, err := os.ReadFile(addrFile); err == nil {
			if err := json.Unmarshal(b, &r.addrs); err != nil {
				t.Fatalf("%s: address file %q: %v", r.name, b, err)
			}
			h.publish(t, r)
			return true, ""
		}
		select {
		case <-r.done:
			t.Fatalf("%s exited while starting (%v, %d bytes of output):\n%s", r.name, r.cmd.ProcessState, len(r.out.String()), r.out.String())
		default:
		}
		return false, "no address file yet"
	})
	return r
}

// run starts the replica's process, bin with args and home as HOME, its output in r.out; it is
// killed when the test ends, and its output logged if the test failed.
func (r *proc) run(t testing.TB, bin, home string, args ...string) {
	t.Helper()
	r.cmd = exec.Command(bin, args...)
	r.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LANG=C"}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("%s (%q) output:\n%s", r.name, args, r.out)
		}
	})
}

// stop interrupts every replica and requires a clean exit.
func (h *haCluster) stop(t testing.TB) {
	for _, r := range h.replicas {
		r.cmd.Process.Signal(os.Interrupt)
	}
	for _, r := range h.replicas {
		select {
		case <-r.done:
			if code := r.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("%s exited with %d after SIGINT, want 0:\n%s", r.name, code, r.out)
			}
		case <-time.After(e2etest.StopTimeout):
			t.Errorf("%s did not stop within %v", r.name, e2etest.StopTimeout)
		}
	}
}

// cpu returns the CPU time the replicas used so far (user and system, from /proc).
func (h *haCluster) cpu(t testing.TB) time.Duration {
	var total time.Duration
	for _, r := range h.replicas {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command name (which ends with ')'): utime and stime are 14 and 15.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return total
}

func (h *haCluster) expect() client.Expect { return client.ExpectSimulated(h.platform.Root()) }

// client returns a client of replica i, acting as user (nil: nobody).
func (h *haCluster) client(t testing.TB, i int, user *e2etest.User) *client.Client {
	t.Helper()
	v, err := client.Verify(t.Context(), h.replicas[i].addrs.Client, h.expect())
	if err != nil {
		t.Fatalf("verify replica %d: %v", i, err)
	}
	var opts []client.Option
	if user != nil {
		opts = append(opts, client.WithCertificate(user.TLS))
	}
	return client.New(h.replicas[i].addrs.Client, v.Root, opts...)
}

// haManifest has a limited and an unlimited workload of the load generator's package, a
// user-defined secret, and a user who may write and read it.
func haManifest(t testing.TB, limit int, admin *e2etest.User) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(loadgen.Manifest("limited"), &m); err != nil {
		t.Fatal(err)
	}
	w := m["workloads"].(map[string]any)
	limited := w["limited"].(map[string]any)
	free := map[string]any{}
	for k, v := range limited {
		free[k] = v
	}
	limited["max_activations"] = limit
	w["free"] = free
	m["secrets"].(map[string]any)["note"] = map[string]any{"type": "user-defined", "max_size": 64}
	if admin == nil {
		return haJSON(t, m)
	}
	m["users"] = map[string]any{"admin": map[string]any{"certificate": admin.CertPEM, "roles": []string{"notes", "manifest"}}}
	m["roles"] = map[string]any{
		"notes":    map[string]any{"resource": "secrets", "names": []string{"note"}, "actions": []string{"read", "write"}},
		"manifest": map[string]any{"resource": "manifest", "actions": []string{"update"}},
	}
	return haJSON(t, m)
}

func haJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// activate runs n activations of workload spread evenly over the replicas, concurrency in
// all, and returns the successes and the time taken.
func (h *haCluster) activate(t testing.TB, workload string, n, concurrency int) (ok int, errs int, elapsed time.Duration, lat []time.Duration) {
	t.Helper()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	start := time.Now()
	k := len(h.replicas)
	for i, r := range h.replicas {
		ni := n / k
		if i < n%k {
			ni++
		}
		ci := concurrency / k
		if i < concurrency%k {
			ci++
		}
		wg.Go(func() {
			res, err := loadgen.Run(t.Context(), loadgen.Config{Mesh: r.addrs.Mesh, Platform: h.platform, Expect: h.expect(),
				Workload: workload, N: ni, Concurrency: ci})
			if res == nil {
				t.Errorf("replica %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ok += len(res.Latencies)
			errs += res.Errors
			lat = append(lat, res.Latencies...)
			if res.FirstErr != nil && !strings.Contains(res.FirstErr.Error(), "ACTIVATION_LIMIT") {
				t.Logf("replica %d: first error: %v", i, res.FirstErr)
			}
		})
	}
	wg.Wait()
	return ok, errs, time.Since(start), lat
}

// secretWrites counts the API server's writes of Secrets, from its metrics.
func secretWrites(t testing.TB, kube *kubetest.Cluster) (reads, writes float64) {
	t.Helper()
	raw, err := kube.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("read the API server's metrics: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="secrets"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `verb="GET"`), strings.Contains(line, `verb="LIST"`):
			reads += v
		case strings.Contains(line, `verb="POST"`), strings.Contains(line, `verb="PUT"`), strings.Contains(line, `verb="DELETE"`), strings.Contains(line, `verb="PATCH"`):
			writes += v
		}
	}
	return reads, writes
}

// TestHAActivationLimit: three Coordinator processes share one state in the API server.
// 10,000 activations of a workload limited to 5,000, spread over all replicas at concurrency
// 32: exactly 5,000 succeed, and every replica reports the same count. A secret set through
// one replica is read through the others at once.
func TestHAActivationLimit(t *testing.T) {
	kube := kubetest.Start(t)
	e := e2etest.New(t)
	h := startHA(t, kube, "cloister-state", 3)
	defer h.stop(t)
	admin := e.NewUser(t, "admin")
	if _, err := h.client(t, 0, nil).SetManifest(t.Context(), haManifest(t, 5000, admin)); err != nil {
		t.Fatal(err)
	}

	// Read-after-write across replicas: set on one, read at once on the next.
	for i := range 3 {
		value := fmt.Sprintf("note-%d", i)
		if err := h.client(t, i, admin).SetSecrets(t.Context(), map[string][]byte{"note": []byte(value)}); err != nil {
			t.Fatalf("set the note on replica %d: %v", i, err)
		}
		j := (i + 1) % 3
		got, err := h.client(t, j, admin).Secrets(t.Context(), "note")
		if err != nil {
			t.Fatalf("read the note on replica %d: %v", j, err)
		}
		if string(got["note"].Value) != value {
			t.Fatalf("replica %d reads the note %q right after replica %d set %q", j, got["note"].Value, i, value)
		}
	}

	_, w0 := secretWrites(t, kube)
	ok, errs, elapsed, _ := h.activate(t, "limited", 10000, 32)
	_, w1 := secretWrites(t, kube)
	t.Logf("10,000 activations limited to 5,000 on 3 replicas: %d succeeded, %d refused in %v; %.0f API writes of Secrets (%.2f per successful activation)",
		ok, errs, elapsed.Round(time.Millisecond), w1-w0, (w1-w0)/float64(max(ok, 1)))
	if ok != 5000 || errs != 5000 {
		t.Fatalf("%d activations succeeded and %d were refused, want exactly 5,000 and 5,000", ok, errs)
	}
	for i := range 3 {
		st, err := h.client(t, i, nil).Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Activations["limited"] != 5000 {
			t.Errorf("replica %d reports %d activations of the limited workload, want 5,000", i, st.Activations["limited"])
		}
	}

	// Unlimited activations are counted by each replica and added up in the shared state.
	if ok, errs, _, _ := h.activate(t, "free", 300, 32); ok != 300 {
		t.Fatalf("%d of 300 unlimited activations succeeded (%d failed)", ok, errs)
	}
	e2etest.WaitFor(t, 10*time.Second, "the unlimited counts of every replica to reach the state", func() (bool, string) {
		st, err := h.client(t, 0, nil).Status(t.Context())
		if err != nil {
			return false, err.Error()
		}
		n := st.Activations["free"]
		return n == 300, fmt.Sprintf("replica 0 reports %d activations of the unlimited workload, want 300", n)
	})

	// The state's size in the API server.
	m, err := kube.Client.CoreV1().Secrets("default").Get(t.Context(), "cloister-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, v := range m.Data {
		size += len(v)
	}
	t.Logf("state after 10,300 activations of 2 workloads: manifest Secret of %d bytes (layout %s)", size, m.Data["layout"])
}

// TestHAReplicaKilled: a replica killed (SIGKILL) under load leaves the others serving and the
// limit exact; started again on its directory it catches up and refuses past the limit.
func TestHAReplicaKilled(t *testing.T) {
	kube := kubetest.Start(t)
	h := startHA(t, kube, "killed-state", 3)
	if _, err := h.client(t, 0, nil).SetManifest(t.Context(), haManifest(t, 2000, nil)); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		survived int
	)
	survivors := &haCluster{kube: kube, platform: h.platform, replicas: h.replicas[1:]}
	wg.Go(func() { survived, _, _, _ = survivors.activate(t, "limited", 4000, 16) })
	victim := &haCluster{kube: kube, platform: h.platform, replicas: h.replicas[:1]}
	var victimOK int
	wg.Go(func() { victimOK, _, _, _ = victim.activate(t, "limited", 2000, 8) })
	time.Sleep(1500 * time.Millisecond)
	if err := h.replicas[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if survived == 0 {
		t.Fatal("no activation succeeded on the surviving replicas")
	}
	if survived+victimOK > 2000 {
		t.Fatalf("%d + %d activations acknowledged, over the limit of 2,000", survived, victimOK)
	}
	// Restart the killed replica on its directory (same key, same newest version seen).
	dead := h.replicas[0]
	<-dead.done
	h.replicas[0] = h.start(t, dead.name, dead.dataDir)
	defer h.stop(t)
	for i := range h.replicas {
		st, err := h.client(t, i, nil).Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Activations["limited"] != 2000 {
			t.Errorf("replica %d reports %d activations, want the limit, 2,000", i, st.Activations["limited"])
		}
	}
	ok, errs, _, _ := (&haCluster{kube: kube, platform: h.platform, replicas: h.replicas[:1]}).activate(t, "limited", 5, 1)
	if ok != 0 || errs != 5 {
		t.Errorf("the restarted replica allowed %d activations past the limit", ok)
	}
	t.Logf("%d activations acknowledged by the surviving replicas, %d by the killed one before it died; the restarted replica reports the limit reached", survived, victimOK)
}

// BenchmarkHAActivations measures activations/s of an unlimited and a limited workload with
// 1, 2 and 3 replicas on one API server, and the API server's writes of Secrets per
// activation. The replicas, the API server, etcd and the load generator share this machine.
func BenchmarkHAActivations(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			kube := kubetest.Start(b)
			h := startHA(b, kube, "bench-state", n)
			defer h.stop(b)
			if _, err := h.client(b, 0, nil).SetManifest(b.Context(), haManifest(b, 1<<30, nil)); err != nil {
				b.Fatal(err)
			}
			for _, wl := range []string{"free", "limited"} {
				b.Run(wl, func(b *testing.B) {
					const per = 2000
					_, w0 := secretWrites(b, kube)
					r0, _ := secretWrites(b, kube)
					cpu0 := h.cpu(b)
					b.ResetTimer()
					var ok int
					var elapsed time.Duration
					var lat []time.Duration
					for b.Loop() {
						o, errs, el, l := h.activate(b, wl, per, 32)
						if errs > 0 {
							b.Fatalf("%d activations failed", errs)
						}
						ok += o
						elapsed += el
						lat = append(lat, l...)
					}
					r1, w1 := secretWrites(b, kube)
					b.ReportMetric(float64((h.cpu(b)-cpu0).Microseconds())/1000/float64(ok), "coordinator-cpu-ms/activation")
					b.ReportMetric(float64(ok)/elapsed.Seconds(), "activations/s")
					b.ReportMetric((w1-w0)/float64(ok), "api-writes/activation")
					b.ReportMetric((r1-r0)/float64(ok), "api-reads/activation")
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}
