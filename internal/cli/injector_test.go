package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/spf13/cobra"
)

func TestInjectorFlags(t *testing.T) {
	simDir := t.TempDir()
	if code, _, stderr := run(t, "sim", "init", simDir); code != 0 {
		t.Fatal(stderr)
	}
	base := []string{"--coordinator", "c.ns.svc:2001", "--coordinator-client-api", "c.ns.svc:4433"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for a valid configuration
	}{
		{"simulation", append(base, "--simulation", "--resource", "sgx.intel.com/epc=10Mi", "--toleration", "sgx.intel.com/epc:NoSchedule"),
			map[string]string{"POD_NAMESPACE": "cloister", "CLOISTER_SIM_DIR": simDir}, ""},
		{"identity", append(base, "--namespace", "x", "--coordinator-mrsigner", strings.Repeat("ab", 32)), nil, ""},
		{"no namespace", append(base, "--insecure-accept-any-enclave"), nil, "--namespace is not set and neither is POD_NAMESPACE"},
		{"no identity", append(base, "--namespace", "x"), nil, "no expected Coordinator identity"},
		{"simulation without platform", append(base, "--namespace", "x", "--simulation"), nil, "--simulation needs CLOISTER_SIM_DIR"},
		{"no coordinator", []string{"--namespace", "x", "--insecure-accept-any-enclave"}, nil, "--coordinator is required"},
		{"bad resource", append(base, "--namespace", "x", "--insecure-accept-any-enclave", "--resource", "epc"), nil, "--resource: resource \"epc\": expected NAME=QUANTITY"},
		{"bad toleration", append(base, "--namespace", "x", "--insecure-accept-any-enclave", "--toleration", "sgx:Sometimes"), nil, `effect "Sometimes"`},
		{"bad mrsigner", append(base, "--namespace", "x", "--coordinator-mrsigner", "zz"), nil, "--coordinator-mrsigner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fl injectorFlags
			cmd := &cobra.Command{}
			fl.register(cmd)
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := fl.config(func(k string) string { return tc.env[k] })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("config: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("config: %v; want an error containing %q", err, tc.want)
			case tc.want == "" && tc.name == "simulation":
				if !cfg.Simulation || cfg.Namespace != "cloister" || len(cfg.SimPlatformFiles) == 0 || len(cfg.Resources) != 1 || len(cfg.Tolerations) != 1 || cfg.Expect.MRSigner == nil {
					t.Errorf("config %+v", cfg)
				}
			}
		})
	}
}

// TestInjectorCommand runs `cloister injector` against a real API server and Coordinator: it
// creates its CA and certificate in the Secret, patches the caBundle, says it is ready, exports
// its metrics, marks simulation loudly, and stops cleanly when its context ends.
func TestInjectorCommand(t *testing.T) {
	c := kubetest.Start(t)
	coord := coordtest.Start(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "cloister"); err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:1/mutate"
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	_, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "cloister-injector"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "inject.cloister.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules:          []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "cloister.dev/workload", Operator: metav1.LabelSelectorOpExists}}},
			FailurePolicy:  &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthAddr := ln.Addr().String()
	ln.Close()

	env := map[string]string{"POD_NAMESPACE": "cloister", "CLOISTER_SIM_DIR": coord.Platform.Dir()}
	var stderr logbuf.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	root := a.newRootCmd()
	root.SetArgs([]string{"injector", "--kubeconfig", c.Kubeconfig, "--listen", "127.0.0.1:0", "--health-listen", healthAddr,
		"--coordinator", "cloister-coordinator.cloister.svc:2001", "--coordinator-client-api", coord.ClientAddr,
		"--simulation", "--resource", "sgx.intel.com/epc=10Mi", "--toleration", "sgx.intel.com/epc:NoSchedule", "--log-format", "text"})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
		if t.Failed() {
			t.Logf("injector stderr:\n%s", stderr.String())
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not OK after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := c.Client.CoreV1().Secrets("cloister").Get(ctx, "cloister-injector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "cloister-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Data["ca.crt"]) == 0 || !bytes.Equal(hook.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"]) {
		t.Errorf("caBundle %q is not the Secret's CA %q", hook.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"])
	}
	resp, err := http.Get("http://" + healthAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "cloister_injector_certificate_expiry_seconds") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics lacks the injector's or Go's metrics:\n%.2000s", body)
	}
	if !strings.Contains(stderr.String(), "SIMULATION MODE") {
		t.Errorf("the log does not say SIMULATION MODE:\n%s", stderr.String())
	}
	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("injector exited with %v after its context ended; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("injector did not stop 15 s after its context ended")
	}
}
