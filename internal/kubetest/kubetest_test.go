package kubetest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloister-dev/cloister/internal/kubetest"
)

const (
	namespace   = "kubetest"
	injectLabel = "kubetest.cloister.dev/inject"
	mutatedKey  = "kubetest.cloister.dev/mutated"
	helloImage  = "localhost/cloister-kubetest/hello:1"
	helloLine   = "hello from a kubetest pod"
)

// TestCluster proves the harness end to end on real components: the control plane comes up,
// the node becomes Ready, a pod from an imported image runs, its log is read through the
// kubelet, its loopback HTTP server is reached through a port-forward, and a mutating
// webhook served by the test on 127.0.0.1 is called for labelled pods only.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := kubetest.Start(t, kubetest.WithNode())
	ctx := t.Context()
	cs := c.Client

	// 1. A namespace and a service account; the controller manager adds "default" to it.
	if err := c.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "worker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 2. The webhook: an HTTPS server on 127.0.0.1 with a certificate of the cluster's CA.
	hook := startWebhook(t, c)
	failFail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	url := "https://" + hook.addr + "/mutate"
	_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kubetest"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.kubetest.cloister.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: c.CAPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{injectLabel: "true"}},
			FailurePolicy:           &failFail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// 3. The workload image: the pause program printing a line and serving it over HTTP on
	// the pod's loopback.
	img, err := kubetest.ProgramImage(c.Node.PauseBinary, "-say", helloLine, "-listen", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadImage(ctx, helloImage, img); err != nil {
		t.Fatal(err)
	}

	// 4. The API server learns of webhook configurations asynchronously: wait until a
	// dry-run create of a labelled pod comes back mutated.
	waitFor(t, 30*time.Second, "the webhook configuration to take effect", func() (bool, string) {
		p, err := cs.CoreV1().Pods(namespace).Create(ctx, helloPod("probe", true), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		return p.Annotations[mutatedKey] == "true", "not mutated yet"
	})

	// 5. A labelled pod: mutated, scheduled, Running. With it, a pod on the host's network,
	// which the test reaches directly on 127.0.0.1.
	podStart := time.Now()
	pod, err := cs.CoreV1().Pods(namespace).Create(ctx, helloPod("hello", true), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hostPort := freePort(t)
	hostPod := helloPod("hostnet", false)
	hostPod.Spec.HostNetwork = true
	hostPod.Spec.Containers[0].Args = []string{"-say", helloLine, "-listen", hostPort}
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, hostPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if pod.Annotations[mutatedKey] != "true" {
		t.Errorf("labelled pod's annotations = %v; want %s=true from the webhook", pod.Annotations, mutatedKey)
	}
	waitFor(t, 60*time.Second, "pod hello Running", func() (bool, string) {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning, podState(p)
	})
	t.Logf("kubetest: pod Running %v after its creation", time.Since(podStart).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "pod hostnet Running", func() (bool, string) {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, "hostnet", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning, podState(p)
	})
	waitFor(t, 10*time.Second, "the hostNetwork pod's server on "+hostPort, func() (bool, string) {
		b, err := tryGet("http://" + hostPort + "/")
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(b) == helloLine, fmt.Sprintf("got %q", b)
	})

	// 6. Its log through the API server and the kubelet.
	waitFor(t, 20*time.Second, "the pod's log", func() (bool, string) {
		b, err := cs.CoreV1().Pods(namespace).GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(string(b)) == helloLine, fmt.Sprintf("log %q, want %q", b, helloLine)
	})

	// 7. Its HTTP server, on the pod's own loopback, through a port-forward.
	fwdCtx, stopFwd := context.WithCancel(ctx)
	defer stopFwd()
	addr, err := c.PortForward(fwdCtx, namespace, "hello", 8080)
	if err != nil {
		t.Fatal(err)
	}
	body := httpGet(t, "http://"+addr+"/")
	if got := strings.TrimSpace(body); got != helloLine {
		t.Errorf("GET through the port-forward = %q, want %q", got, helloLine)
	}
	stopFwd()

	// 8. An unlabelled pod never reaches the webhook.
	before := hook.calls()
	p, err := cs.CoreV1().Pods(namespace).Create(ctx, helloPod("plain", false), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Annotations[mutatedKey]; ok || hook.calls() != before {
		t.Errorf("unlabelled pod: annotations %v, webhook calls %d -> %d; want it untouched", p.Annotations, before, hook.calls())
	}

	for _, tm := range c.Timings() {
		t.Logf("kubetest: timing: %-22s %v", tm.Step, tm.Took.Round(time.Millisecond))
	}
	for _, m := range c.Memory() {
		t.Logf("kubetest: memory: %-24s %4d MiB", m.Component, m.RSS>>20)
	}

	// 9. The pods stop on deletion (the pause program exits on SIGTERM).
	for _, name := range []string{"hello", "hostnet"} {
		if err := cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "pods deleted", func() (bool, string) {
		l, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 0, fmt.Sprintf("%d pods left", len(l.Items))
	})
	t.Logf("kubetest: whole test %v", time.Since(start).Round(time.Millisecond))
}

// TestControlPlaneOnly starts a cluster without a node: pods are accepted and stay Pending.
func TestControlPlaneOnly(t *testing.T) {
	c := kubetest.Start(t)
	if c.Node != nil {
		t.Fatal("Node is set without WithNode")
	}
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("server version %s, want v1.37.2", v.GitVersion)
	}
}

func helloPod(name string, labelled bool) *corev1.Pod {
	labels := map[string]string{"app": "hello"}
	if labelled {
		labels[injectLabel] = "true"
	}
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName:            "worker",
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "hello",
				Image:           helloImage,
				ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

func podState(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf("; %s=%s %s %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s += fmt.Sprintf("; %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
	}
	return s
}

// webhook is the test's mutating admission webhook: it annotates every pod it is sent.
type webhook struct {
	addr string
	mu   sync.Mutex
	n    int // guarded by mu: requests served
}

func (h *webhook) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func startWebhook(t *testing.T, c *kubetest.Cluster) *webhook {
	t.Helper()
	cert, err := c.ServingCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &webhook{addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mutate", h.mutate)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxHeaderBytes: 1 << 16,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return h
}

func (h *webhook) mutate(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("expected an AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var patch []map[string]any
	if pod.Annotations == nil {
		patch = append(patch, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}})
	}
	patch = append(patch, map[string]any{"op": "add", "path": "/metadata/annotations/" + strings.ReplaceAll(mutatedKey, "/", "~1"), "value": "true"})
	b, _ := json.Marshal(patch)
	pt := admissionv1.PatchTypeJSONPatch
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: b, PatchType: &pt}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	b, err := tryGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryGet(url string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

// freePort returns a free address on 127.0.0.1 (host:port).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds, failing t with cond's last explanation after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v: %s", what, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
