package injector

import (
	"bytes"
	"encoding/pem"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/cloister-dev/cloister/internal/logbuf"
)

// fakeCerts returns certs on a fake API holding the webhook configuration with uid.
func fakeCerts(t *testing.T, uid types.UID) (*certs, *fake.Clientset, *logbuf.Buffer) {
	t.Helper()
	kube := fake.NewClientset(webhookConfiguration(uid, nil))
	var log logbuf.Buffer
	cfg := &Config{Namespace: "cloister", Service: "cloister-injector", WebhookConfiguration: "cloister-injector-cloister",
		CertSecret: "cloister-injector-tls", Kube: kube}
	cfg.setDefaults()
	return &certs{cfg: cfg, now: time.Now, m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(&log, nil))}, kube, &log
}

func webhookConfiguration(uid types.UID, bundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "cloister-injector-cloister", UID: uid},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "pods.cloister.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: bundle}}},
	}
}

func secretOf(t *testing.T, c *certs) *corev1.Secret {
	t.Helper()
	s, err := c.cfg.Kube.CoreV1().Secrets(c.cfg.Namespace).Get(t.Context(), c.cfg.CertSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func owners(s *corev1.Secret) []types.UID {
	var uids []types.UID
	for _, r := range s.OwnerReferences {
		uids = append(uids, r.UID)
	}
	return uids
}

func pemCount(b []byte) int {
	n := 0
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return n
		}
		n++
	}
}

// TestCertSecretOwner: the Secret is made owned by the configuration; a configuration made
// again (a new UID) takes over the Secret and its CA as they are; a Secret made while the
// caBundle trusts an earlier CA keeps that CA trusted beside the new one.
func TestCertSecretOwner(t *testing.T) {
	c, kube, _ := fakeCerts(t, "uid-1")
	ctx := t.Context()
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	s := secretOf(t, c)
	if got := owners(s); len(got) != 1 || got[0] != "uid-1" {
		t.Fatalf("owners %v; want the configuration uid-1", got)
	}

	// The configuration deleted and made again, with the caBundle as it was.
	hooks := kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if err := hooks.Delete(ctx, c.cfg.WebhookConfiguration, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Create(ctx, webhookConfiguration("uid-2", s.Data[keyCACert]), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := secretOf(t, c)
	if got := owners(s2); len(got) != 1 || got[0] != "uid-2" {
		t.Fatalf("owners after the configuration was made again %v; want uid-2 alone", got)
	}
	if !bytes.Equal(s2.Data[keyCAKey], s.Data[keyCAKey]) || !bytes.Equal(s2.Data[keyTLSCert], s.Data[keyTLSCert]) {
		t.Error("taking the Secret over changed its certificates")
	}

	// The garbage collector took the Secret (an old one's race): the next one's bundle keeps
	// the CA other replicas still serve under.
	if err := kube.CoreV1().Secrets(c.cfg.Namespace).Delete(ctx, c.cfg.CertSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	s3 := secretOf(t, c)
	if bytes.Equal(s3.Data[keyCAKey], s.Data[keyCAKey]) {
		t.Fatal("a new Secret reused the old CA key")
	}
	if n := pemCount(s3.Data[keyCACert]); n != 2 || !bytes.Contains(s3.Data[keyCACert], s.Data[keyCACert]) {
		t.Errorf("ca.crt of the new Secret holds %d certificates; want the new CA and the old one still in the caBundle", n)
	}
	if ca, _, err := parseCA(s3.Data); err != nil || !bytes.Contains(s3.Data[keyCACert][:len(pemCert(ca.Raw))], pemCert(ca.Raw)) {
		t.Errorf("the new Secret's CA is not first in ca.crt: %v", err)
	}
	hook, err := hooks.Get(ctx, c.cfg.WebhookConfiguration, metav1.GetOptions{})
	if err != nil || !bytes.Equal(hook.Webhooks[0].ClientConfig.CABundle, s3.Data[keyCACert]) {
		t.Errorf("caBundle is not the new Secret's ca.crt: %v", err)
	}
}

// TestCertSecretOwnerRefused: a cluster that refuses to set the owner (the
// OwnerReferencesPermissionEnforcement plugin without delete on the Secret) gets a warning,
// and the webhook serves the certificate as it is.
func TestCertSecretOwnerRefused(t *testing.T) {
	c, kube, log := fakeCerts(t, "uid-1")
	ctx := t.Context()
	secrets := kube.CoreV1().Secrets(c.cfg.Namespace)
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: c.cfg.CertSecret, Namespace: c.cfg.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := c.issue(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := secretOf(t, c)
	s.Data = data
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), c.cfg.CertSecret, nil)
	})
	if err := c.sync(ctx); err != nil {
		t.Fatalf("sync with the owner refused: %v; want the certificate served as it is", err)
	}
	if err := c.ready(); err != nil {
		t.Errorf("not ready: %v", err)
	}
	if err := c.sync(ctx); err != nil {
		t.Fatalf("second sync with the owner refused: %v", err)
	}
	if n := strings.Count(log.String(), "cannot make the webhook configuration the owner"); n != 1 {
		t.Errorf("the refusal is in the log %d times after two checks; want once:\n%s", n, log.String())
	}
}
