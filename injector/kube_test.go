package injector_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/injector"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/logbuf"
)

const (
	hookNS  = "cloister"
	appsNS  = "apps"
	hookCfg = "cloister-injector"
	image   = "localhost/cloister-injector-test/app:1"
	epc     = corev1.ResourceName("sgx.intel.com/epc")
	enclave = corev1.ResourceName("sgx.intel.com/enclave")
)

// testManifest has two workloads: web, whose certificate may carry some of its Service's names,
// and worker, with no names.
const testManifest = `{
  "packages": {"app": {"mrenclave": "0101010101010101010101010101010101010101010101010101010101010101"}},
  "workloads": {
    "web": {"package": "app", "tls": {"dns": ["web"], "allowed_dns": ["web.apps.svc", "*.apps.svc.cluster.local"]}},
    "worker": {"package": "app"}
  }
}`

// env is a real API server, a real Coordinator, and the webhook registered with the API
// server by URL on 127.0.0.1.
type env struct {
	cluster *kubetest.Cluster
	coord   *coordtest.Coordinator
	addr    string // the webhook's address
	log     *logbuf.Buffer
	stop    func() // stops the webhook and waits for Run to return
	cfg     injector.Config
	reg     *prometheus.Registry
}

type envOpts struct {
	certValidity, checkInterval, caValidity time.Duration
	noWebhook                               bool // register nothing (the baseline of the benchmark)
}

func startEnv(tb testing.TB, o envOpts) *env {
	tb.Helper()
	c := kubetest.Start(tb)
	coord := coordtest.Start(tb)
	ctx := tb.Context()
	if _, err := coord.Core.SetManifest(ctx, nil, []byte(testManifest)); err != nil {
		tb.Fatal(err)
	}
	for _, ns := range []string{hookNS, appsNS} {
		if err := c.CreateNamespace(ctx, ns); err != nil {
			tb.Fatal(err)
		}
	}
	e := &env{cluster: c, coord: coord, log: &logbuf.Buffer{}, reg: prometheus.NewRegistry()}
	if o.noWebhook {
		return e
	}
	// A Service selecting the web pods; its names go into CLOISTER_DNS_NAMES as far as the
	// manifest allows them.
	_, err := c.Client.CoreV1().Services(appsNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 443}}},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.addr = ln.Addr().String()
	// The configuration starts with no caBundle: the webhook puts its CA there.
	registerWebhook(tb, c, "https://"+e.addr+injector.MutatePath)

	files, err := injector.SimPlatformFiles(coord.Platform.Dir())
	if err != nil {
		tb.Fatal(err)
	}
	e.cfg = injector.Config{
		Namespace: hookNS, Service: "cloister-injector", WebhookConfiguration: hookCfg, CertSecret: "cloister-injector-tls",
		ExtraHosts:   []string{"127.0.0.1"},
		CertValidity: o.certValidity, CAValidity: o.caValidity, CheckInterval: o.checkInterval,
		Coordinator: "cloister-coordinator.cloister.svc:2001", CoordinatorClientAPI: coord.ClientAddr,
		Expect:     client.ExpectSimulated(coord.Platform.Root()),
		Simulation: true, SimPlatformFiles: files,
		Resources:   corev1.ResourceList{epc: resource.MustParse("10Mi"), enclave: resource.MustParse("1")},
		Tolerations: []corev1.Toleration{{Key: "sgx.intel.com/epc", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Kube:        c.Client,
		Log:         slog.New(slog.NewTextHandler(e.log, nil)),
		Registerer:  e.reg,
	}
	inj, err := injector.New(e.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inj.Run(runCtx, ln, health) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("injector Run: %v", err)
			}
		})
	}
	tb.Cleanup(func() {
		e.stop()
		if tb.Failed() {
			tb.Logf("injector log:\n%s", e.log.String())
		}
	})
	// The API server learns of the caBundle asynchronously: wait until a labelled pod comes
	// back injected.
	waitFor(tb, 60*time.Second, "the webhook to inject a dry-run pod", func() (bool, string) {
		p, err := c.Client.CoreV1().Pods(appsNS).Create(ctx, pod("probe", "worker"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		return p.Annotations[injector.InjectedAnnotation] == "worker", "not injected yet"
	})
	return e
}

func registerWebhook(tb testing.TB, c *kubetest.Cluster, url string) {
	tb.Helper()
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	_, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(tb.Context(), &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: hookCfg},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.cloister.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: injector.Label, Operator: metav1.LabelSelectorOpExists}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          new(int32(10)),
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
}

// pod is a pod of app=NAME, labelled for workload (none if empty). Its container asks for 4Mi of
// EPC already, which must be kept.
func pod(name, workload string) *corev1.Pod {
	l := map[string]string{"app": name}
	if workload != "" {
		l[injector.Label] = workload
		l["app"] = workload
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appsNS, Labels: l},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: image, ImagePullPolicy: corev1.PullNever,
			Env: []corev1.EnvVar{{Name: "APP_MODE", Value: "prod"}, {Name: "CLOISTER_WORKLOAD", Value: "forged"}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{epc: resource.MustParse("4Mi"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{epc: resource.MustParse("4Mi")},
			},
		}}},
	}
}

// TestWebhook proves the webhook on a real API server with a real Coordinator.
func TestWebhook(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := t.Context()
	pods := e.cluster.Client.CoreV1().Pods(appsNS)

	t.Run("labelled pod is injected", func(t *testing.T) {
		p, err := pods.Create(ctx, pod("web-1", "web"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		got := map[string]corev1.EnvVar{}
		var names []string
		for _, v := range c.Env {
			got[v.Name] = v
			names = append(names, v.Name)
		}
		want := []string{"APP_MODE", "CLOISTER_COORDINATOR", "CLOISTER_WORKLOAD", "CLOISTER_INSTANCE", "CLOISTER_TEE", "CLOISTER_SIM_DIR", "CLOISTER_DNS_NAMES"}
		if !slices.Equal(names, want) {
			t.Errorf("env names %v, want %v (the pod's own CLOISTER_WORKLOAD replaced)", names, want)
		}
		for name, val := range map[string]string{
			"APP_MODE": "prod", "CLOISTER_COORDINATOR": "cloister-coordinator.cloister.svc:2001", "CLOISTER_WORKLOAD": "web",
			"CLOISTER_TEE": "simulation", "CLOISTER_SIM_DIR": injector.SimMountPath,
			// web.apps is not in the manifest's names; the other three are (one by wildcard).
			"CLOISTER_DNS_NAMES": "web,web.apps.svc,web.apps.svc.cluster.local",
		} {
			if got[name].Value != val {
				t.Errorf("env %s = %q, want %q", name, got[name].Value, val)
			}
		}
		if vf := got["CLOISTER_INSTANCE"].ValueFrom; vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != "metadata.uid" {
			t.Errorf("CLOISTER_INSTANCE = %+v, want the downward API's metadata.uid", got["CLOISTER_INSTANCE"])
		}
		checkQty(t, c.Resources.Limits, epc, "4Mi") // kept
		checkQty(t, c.Resources.Requests, epc, "4Mi")
		checkQty(t, c.Resources.Limits, enclave, "1") // added
		checkQty(t, c.Resources.Requests, enclave, "1")
		checkQty(t, c.Resources.Limits, corev1.ResourceMemory, "64Mi")
		if !slices.ContainsFunc(p.Spec.Tolerations, func(tl corev1.Toleration) bool {
			return tl.Key == "sgx.intel.com/epc" && tl.Operator == corev1.TolerationOpExists && tl.Effect == corev1.TaintEffectNoSchedule
		}) {
			t.Errorf("tolerations %+v lack sgx.intel.com/epc:NoSchedule", p.Spec.Tolerations)
		}
		vol := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == injector.SimSecret })
		mnt := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == injector.SimMountPath && m.ReadOnly })
		if vol < 0 || mnt < 0 {
			t.Errorf("simulated platform not mounted: volumes %+v, mounts %+v", p.Spec.Volumes, c.VolumeMounts)
		} else if items := p.Spec.Volumes[vol].Secret.Items; !slices.ContainsFunc(items, func(k corev1.KeyToPath) bool {
			return k.Key == "private.attestation_key.pem" && k.Path == "private/attestation_key.pem"
		}) {
			t.Errorf("simulated platform items %+v lack private/attestation_key.pem", items)
		}
		if p.Annotations[injector.InjectedAnnotation] != "web" {
			t.Errorf("annotations %v, want %s=web", p.Annotations, injector.InjectedAnnotation)
		}
	})

	t.Run("re-admission of an injected pod changes nothing", func(t *testing.T) {
		first, err := pods.Create(ctx, pod("web-2", "web"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		again := first.DeepCopy()
		again.ResourceVersion, again.UID, again.CreationTimestamp = "", "", metav1.Time{}
		second, err := pods.Create(ctx, again, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if d := diffSpec(first, second); d != "" {
			t.Errorf("injecting an injected pod again changed it: %s", d)
		}
	})

	t.Run("unlabelled pod is unchanged", func(t *testing.T) {
		p, err := pods.Create(ctx, pod("plain", ""), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		simVol := slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == injector.SimSecret })
		if len(c.Env) != 2 || c.Env[1].Value != "forged" || simVol || len(p.Annotations) != 0 {
			t.Errorf("unlabelled pod changed: env %v, volumes %v, annotations %v", c.Env, p.Spec.Volumes, p.Annotations)
		}
		if _, ok := c.Resources.Limits[enclave]; ok {
			t.Errorf("unlabelled pod got %s", enclave)
		}
		for _, tl := range p.Spec.Tolerations {
			if tl.Key == "sgx.intel.com/epc" {
				t.Errorf("unlabelled pod got toleration %+v", tl)
			}
		}
	})

	t.Run("unknown workload is denied", func(t *testing.T) {
		_, err := pods.Create(ctx, pod("ghost", "ghost"), metav1.CreateOptions{})
		want := `label cloister.dev/workload="ghost" names a workload the Cloister manifest lacks; its workloads are: web, worker`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("create a pod of an unknown workload: %v; want a denial containing %q", err, want)
		}
	})

	t.Run("webhook down", func(t *testing.T) {
		e.stop()
		_, err := pods.Create(ctx, pod("web-down", "web"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("labelled pod with the webhook down: %v; want it denied (failurePolicy Fail)", err)
		}
		p, err := pods.Create(ctx, pod("plain-down", ""), metav1.CreateOptions{})
		if err != nil {
			t.Errorf("unlabelled pod with the webhook down: %v; want it admitted", err)
		} else if len(p.Annotations) != 0 {
			t.Errorf("unlabelled pod annotated %v", p.Annotations)
		}
	})
}

// TestRotation renews the serving certificate every few seconds while pods are created without
// pause: no admission may fail, and the served certificate must have changed.
func TestRotation(t *testing.T) {
	e := startEnv(t, envOpts{certValidity: 6 * time.Second, checkInterval: 300 * time.Millisecond, caValidity: time.Hour})
	certs, _ := createDuringRotation(t, e, 15*time.Second)
	if certs < 3 || certs > 6 {
		t.Errorf("%d served certificates over 15 s with a 6 s validity; want 3 to 6 (renewal about every 4 s)", certs)
	}
	if !strings.Contains(e.log.String(), "renewed the serving certificate") {
		t.Error("the log does not say the certificate was renewed")
	}
}

// TestCARotation replaces the CA too while pods are created: the caBundle carries the new CA
// before any certificate of it is served, and the old one while certificates of it may be.
func TestCARotation(t *testing.T) {
	e := startEnv(t, envOpts{certValidity: 3 * time.Second, checkInterval: 200 * time.Millisecond, caValidity: 9 * time.Second})
	_, cas := createDuringRotation(t, e, 20*time.Second)
	if cas < 2 {
		t.Errorf("%d CAs seen over 20 s with a 9 s CA validity; want at least 2", cas)
	}
}

// createDuringRotation creates pods one after another for d, failing t on any refusal, and
// returns how many serving certificates and CAs it saw served.
func createDuringRotation(t *testing.T, e *env, d time.Duration) (certs, cas int) {
	t.Helper()
	ctx := t.Context()
	pods := e.cluster.Client.CoreV1().Pods(appsNS)
	seen, issuers := map[string]bool{}, map[string]bool{}
	look := func() {
		serial, issuer := served(t, e.addr)
		seen[serial], issuers[issuer] = true, true
	}
	look()
	deadline := time.Now().Add(d)
	n := 0
	for time.Now().Before(deadline) {
		p, err := pods.Create(ctx, pod(fmt.Sprintf("rot-%d", n), "worker"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("pod %d during rotation: %v", n, err)
		}
		if p.Annotations[injector.InjectedAnnotation] != "worker" {
			t.Fatalf("pod %d not injected during rotation", n)
		}
		n++
		if n%10 == 0 {
			look()
		}
	}
	t.Logf("%d pods admitted while %d serving certificates from %d CAs were seen", n, len(seen), len(issuers))
	return len(seen), len(issuers)
}

// served returns the serial and issuer of the certificate the webhook serves.
func served(t *testing.T, addr string) (serial, issuer string) {
	t.Helper()
	conn, err := tlsDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.ConnectionState().PeerCertificates[0]
	return c.SerialNumber.Text(16), c.Issuer.String()
}

func checkQty(t *testing.T, l corev1.ResourceList, name corev1.ResourceName, want string) {
	t.Helper()
	q, ok := l[name]
	if w := resource.MustParse(want); !ok || q.Cmp(w) != 0 {
		t.Errorf("%s = %v (present %v), want %s", name, q.String(), ok, want)
	}
}

func diffSpec(a, b *corev1.Pod) string {
	// Service account volumes get random names per create; everything else must be equal.
	strip := func(p *corev1.Pod) *corev1.Pod {
		p = p.DeepCopy()
		p.Spec.Volumes = slices.DeleteFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return strings.HasPrefix(v.Name, "kube-api-access-") })
		for i := range p.Spec.Containers {
			c := &p.Spec.Containers[i]
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(m.Name, "kube-api-access-") })
		}
		return p
	}
	return cmp.Diff(strip(a).Spec, strip(b).Spec, cmpopts.EquateEmpty()) + cmp.Diff(a.Annotations, b.Annotations)
}

// waitFor polls cond until it holds or d passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waiting for %s: %s", what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplicas runs a second replica beside the first, both renewing every few seconds: the
// Secret is the source of truth, so both serve the same certificate (one of them writes each
// renewal, the other adopts it), the caBundle is the Secret's CA, no private key is logged,
// and /readyz says ready.
func TestReplicas(t *testing.T) {
	e := startEnv(t, envOpts{certValidity: 6 * time.Second, checkInterval: 300 * time.Millisecond, caValidity: time.Hour})
	ctx := t.Context()
	cfg2 := e.cfg
	log2 := &logbuf.Buffer{}
	cfg2.Log, cfg2.Registerer = slog.New(slog.NewTextHandler(log2, nil)), nil
	inj2, err := injector.New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inj2.Run(runCtx, ln, health) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second replica: %v", err)
		}
	}()
	waitFor(t, 10*time.Second, "the second replica's /readyz", func() (bool, string) {
		resp, err := http.Get("http://" + health.Addr().String() + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	deadline := time.Now().Add(14 * time.Second)
	agreed, disagreed := 0, 0
	for time.Now().Before(deadline) {
		a, _ := served(t, e.addr)
		b, _ := served(t, ln.Addr().String())
		if a == b {
			agreed++
		} else {
			disagreed++
		}
		time.Sleep(200 * time.Millisecond)
	}
	// They differ only between one replica's renewal and the other's next check (300 ms).
	if agreed < 4*disagreed {
		t.Errorf("the replicas served the same certificate %d times and different ones %d times; want them to agree", agreed, disagreed)
	}
	writes := strings.Count(e.log.String(), "renewed the serving certificate") + strings.Count(log2.String(), "renewed the serving certificate")
	if writes < 2 || writes > 5 {
		t.Errorf("%d renewals written over 14 s with a 6 s validity by two replicas; want 2 to 5 (one per renewal, not one per replica)", writes)
	}

	s, err := e.cluster.Client.CoreV1().Secrets(hookNS).Get(ctx, e.cfg.CertSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, hookCfg, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(hook.Webhooks[0].ClientConfig.CABundle) != string(s.Data["ca.crt"]) {
		t.Errorf("caBundle\n%s\nis not the Secret's ca.crt\n%s", hook.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"])
	}
	for _, l := range []string{e.log.String(), log2.String()} {
		if strings.Contains(l, "PRIVATE KEY") || strings.Contains(l, string(s.Data["tls.key"])) {
			t.Error("a private key was logged")
		}
	}
}

// TestCertSecretOwned: the certificate Secret belongs to the webhook configuration, so that
// deleting the configuration (an uninstall) has the garbage collector delete the CA's key; a
// Secret without the owner (an older version's) is adopted; and a webhook still running once
// the configuration is gone does not create the Secret again.
func TestCertSecretOwned(t *testing.T) {
	e := startEnv(t, envOpts{checkInterval: 200 * time.Millisecond})
	ctx := t.Context()
	c := e.cluster.Client
	secrets := c.CoreV1().Secrets(hookNS)
	hook, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, hookCfg, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned := func() (bool, string) {
		s, err := secrets.Get(ctx, e.cfg.CertSecret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, r := range s.OwnerReferences {
			if r.UID == hook.UID && r.Kind == "MutatingWebhookConfiguration" && r.Name == hookCfg {
				return true, ""
			}
		}
		return false, fmt.Sprintf("owners %+v", s.OwnerReferences)
	}
	if ok, why := owned(); !ok {
		t.Fatalf("the certificate Secret does not belong to the webhook configuration: %s", why)
	}

	// An older version's Secret, without owner, is adopted at the next check.
	s, err := secrets.Get(ctx, e.cfg.CertSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.OwnerReferences = nil
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the Secret to be adopted", owned)
	if after, _ := secrets.Get(ctx, e.cfg.CertSecret, metav1.GetOptions{}); after == nil || !bytes.Equal(after.Data["ca.key"], s.Data["ca.key"]) {
		t.Error("adopting the Secret changed its CA")
	}

	// The uninstall: the configuration goes, the garbage collector takes the Secret, and the
	// webhook, still running, does not make a new one.
	if err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, hookCfg, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the garbage collector to delete the certificate Secret", func() (bool, string) {
		_, err := secrets.Get(ctx, e.cfg.CertSecret, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	time.Sleep(time.Second) // five checks of the webhook
	if _, err := secrets.Get(ctx, e.cfg.CertSecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the webhook made the certificate Secret again with its configuration gone: %v", err)
	}
	if l := e.log.String(); !strings.Contains(l, "read MutatingWebhookConfiguration "+hookCfg) || !strings.Contains(l, "not found") {
		t.Errorf("the webhook's log does not say its configuration is gone:\n%s", e.log.String())
	}
}
