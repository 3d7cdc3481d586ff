package injector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys of the certificate Secret (the names cert-manager uses, plus the CA's key).
const (
	keyCACert  = "ca.crt"
	keyCAKey   = "ca.key"
	keyTLSCert = corev1.TLSCertKey       // tls.crt
	keyTLSKey  = corev1.TLSPrivateKeyKey // tls.key
)

// certs keeps the serving certificate: from the Secret, made or renewed when due, and the CA in
// the webhook configuration's caBundle.
type certs struct {
	cfg *Config
	now func() time.Time
	m   *metrics
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
	}

	current atomic.Pointer[tls.Certificate]
	// bundleOK is set once the caBundle is known to hold the serving certificate's CA.
	bundleOK atomic.Bool
	// ownerWarned is set once the refusal to own the Secret was logged.
	ownerWarned atomic.Bool
}

// getCertificate is tls.Config.GetCertificate: the newest certificate, so a renewal takes
// effect on the next handshake without a restart.
func (c *certs) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.current.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// ready reports whether the webhook can serve: a certificate and, when it manages them, a
// caBundle that trusts it.
func (c *certs) ready() error {
	if c.current.Load() == nil {
		return errors.New("no serving certificate yet")
	}
	if !c.cfg.CertManager && !c.bundleOK.Load() {
		return fmt.Errorf("the caBundle of MutatingWebhookConfiguration %s does not hold the CA yet", c.cfg.WebhookConfiguration)
	}
	return nil
}

// hosts are the serving certificate's names.
func (c *certs) hosts() []string {
	s, ns := c.cfg.Service, c.cfg.Namespace
	h := []string{s, s + "." + ns, s + "." + ns + ".svc", s + "." + ns + ".svc." + c.cfg.ClusterDomain}
	return append(h, c.cfg.ExtraHosts...)
}

// sync runs one check: read the Secret, make or renew what is due (compare-and-swap on the
// Secret's resourceVersion; a replica that loses adopts the winner's), serve it, and patch the
// caBundle.
func (c *certs) sync(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := c.syncOnce(ctx)
		if err == nil || attempt == 4 || !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			return err
		}
	}
}

func (c *certs) syncOnce(ctx context.Context) error {
	secrets := c.cfg.Kube.CoreV1().Secrets(c.cfg.Namespace)
	s, err := secrets.Get(ctx, c.cfg.CertSecret, metav1.GetOptions{})
	notFound := apierrors.IsNotFound(err)
	if err != nil && !notFound {
		return fmt.Errorf("read secret %s/%s: %w", c.cfg.Namespace, c.cfg.CertSecret, err)
	}
	if c.cfg.CertManager {
		if notFound {
			return fmt.Errorf("secret %s/%s does not exist yet (it is written by cert-manager)", c.cfg.Namespace, c.cfg.CertSecret)
		}
		return c.use(s.Data)
	}
	// The Secret belongs to the webhook configuration: deleting the configuration (helm or
	// cloister uninstall) has the garbage collector delete the CA's key with it, and a Secret
	// a webhook still running made in that instant names an owner that is gone, which the
	// garbage collector deletes too. With no configuration, nothing is made.
	hook, err := c.webhookConfiguration(ctx)
	if err != nil {
		return err
	}
	owner := metav1.OwnerReference{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingWebhookConfiguration", Name: hook.Name, UID: hook.UID}
	if notFound {
		data, err := c.issue(nil)
		if err != nil {
			return err
		}
		// Other replicas serve certificates of the CA in the caBundle until their next check:
		// it stays trusted beside the new one (the next renewal drops it).
		data[keyCACert] = append(data[keyCACert], validCAs(hook, c.now(), data[keyCACert])...)
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: c.cfg.CertSecret, Namespace: c.cfg.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "cloister-injector"},
				OwnerReferences: []metav1.OwnerReference{owner}},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		if s, err = secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create secret %s/%s: %w", c.cfg.Namespace, c.cfg.CertSecret, err)
		}
		c.m.rotations.WithLabelValues("created").Inc()
		c.log.Info("created the CA and serving certificate", "secret", c.cfg.CertSecret)
	} else if why, owned := c.due(s.Data), ownedBy(s, owner); why != "" || !owned {
		s = s.DeepCopy()
		if why != "" {
			if s.Data, err = c.issue(s.Data); err != nil {
				return err
			}
		}
		// A Secret of an older version, or of a configuration deleted and created again.
		s.OwnerReferences = append(slices.DeleteFunc(s.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.Kind == owner.Kind && strings.HasPrefix(r.APIVersion, admissionregistrationv1.GroupName+"/")
		}), owner)
		// Update carries the resourceVersion read above: if another replica renewed in
		// between, this fails with a conflict and the next attempt adopts its certificate.
		updated, err := secrets.Update(ctx, s, metav1.UpdateOptions{})
		switch {
		case err == nil && why != "":
			s = updated
			c.m.rotations.WithLabelValues("renewed").Inc()
			c.log.Info("renewed the serving certificate", "reason", why, "secret", c.cfg.CertSecret)
		case err == nil:
			s = updated
			c.log.Info("the certificate Secret now belongs to the webhook configuration", "secret", c.cfg.CertSecret, "configuration", hook.Name)
		case why == "" && !apierrors.IsConflict(err):
			// Only the owner was to change: the certificate as read still serves. (A cluster
			// with OwnerReferencesPermissionEnforcement wants delete on the Secret for it.)
			// It is tried again at every check, and said once.
			if !c.ownerWarned.Swap(true) {
				c.log.Warn("cannot make the webhook configuration the owner of the certificate Secret; an uninstall will leave it behind",
					"secret", c.cfg.CertSecret, "error", err.Error())
			}
		default:
			return fmt.Errorf("update secret %s/%s: %w", c.cfg.Namespace, c.cfg.CertSecret, err)
		}
	}
	if err := c.patchBundle(ctx, hook, s.Data[keyCACert]); err != nil {
		return err
	}
	return c.use(s.Data)
}

// use serves the certificate in data.
func (c *certs) use(data map[string][]byte) error {
	cert, err := tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey])
	if err != nil {
		return fmt.Errorf("secret %s/%s: %s and %s: %w", c.cfg.Namespace, c.cfg.CertSecret, keyTLSCert, keyTLSKey, err)
	}
	if old := c.current.Load(); old == nil || !bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		c.log.Info("serving certificate loaded", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
		c.m.certExpiry.Set(float64(leaf.NotAfter.Unix()))
	}
	c.current.Store(&cert)
	return nil
}

// due says why the certificates in data must be renewed, or "" if they need not.
func (c *certs) due(data map[string][]byte) string {
	ca, _, err := parseCA(data)
	if err != nil {
		return "CA unusable: " + err.Error()
	}
	now := c.now()
	if renewAt(ca).Before(now) {
		return "CA near expiry"
	}
	leaf, err := parseLeaf(data)
	if err != nil {
		return "serving certificate unusable: " + err.Error()
	}
	if renewAt(leaf).Before(now) {
		return "serving certificate near expiry"
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return "serving certificate not from the CA"
	}
	for _, h := range c.hosts() {
		if leaf.VerifyHostname(h) != nil {
			return "serving certificate lacks " + h
		}
	}
	return ""
}

// backdate is how far a certificate's NotBefore lies in the past, for clocks a little behind:
// a minute, or a tenth of a short validity (which would otherwise be due at once).
func backdate(validity time.Duration) time.Duration { return min(time.Minute, validity/10) }

// renewAt is 2/3 into a certificate's validity.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// issue returns new Secret data: the CA from old if it is still good for a whole certificate
// validity, else a new one, and a new serving certificate from it. ca.crt lists the CA first
// and, after a CA change, the previous CA while it is valid, so that clients with the old
// bundle and the new one both work during the change.
func (c *certs) issue(old map[string][]byte) (map[string][]byte, error) {
	now := c.now()
	ca, caKey, err := parseCA(old)
	var prev *x509.Certificate
	if err != nil || renewAt(ca).Before(now) || ca.NotAfter.Before(now.Add(c.cfg.CertValidity)) {
		if err == nil && ca.NotAfter.After(now) {
			prev = ca
		}
		if ca, caKey, err = newCA(now, c.cfg.CAValidity); err != nil {
			return nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.cfg.Service + "." + c.cfg.Namespace + ".svc"},
		NotBefore:    now.Add(-backdate(c.cfg.CertValidity)),
		NotAfter:     now.Add(c.cfg.CertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range c.hosts() {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	bundle := pemCert(ca.Raw)
	if prev != nil {
		bundle = append(bundle, pemCert(prev.Raw)...)
	}
	return map[string][]byte{
		keyCACert:  bundle,
		keyCAKey:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		keyTLSCert: pemCert(der),
		keyTLSKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func newCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cloister-injector CA " + now.UTC().Format(time.RFC3339)},
		NotBefore:             now.Add(-backdate(validity)),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create the webhook CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// parseCA returns the CA (the first certificate of ca.crt) and its key.
func parseCA(data map[string][]byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if data == nil {
		return nil, nil, errors.New("no secret")
	}
	b, _ := pem.Decode(data[keyCACert])
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: expected a PEM certificate", keyCACert)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyCACert, err)
	}
	k, _ := pem.Decode(data[keyCAKey])
	if k == nil {
		return nil, nil, fmt.Errorf("%s: expected a PEM EC private key", keyCAKey)
	}
	key, err := x509.ParseECPrivateKey(k.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyCAKey, err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of %s", keyCAKey, keyCACert)
	}
	return ca, key, nil
}

func parseLeaf(data map[string][]byte) (*x509.Certificate, error) {
	cert, err := tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey])
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// patchBundle sets caBundle of every webhook in the configuration to bundle (CAS on its
// resourceVersion).
func (c *certs) patchBundle(ctx context.Context, cfg *admissionregistrationv1.MutatingWebhookConfiguration, bundle []byte) error {
	hooks := c.cfg.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if len(cfg.Webhooks) == 0 {
		return fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", c.cfg.WebhookConfiguration)
	}
	if !slices.ContainsFunc(cfg.Webhooks, func(w admissionWebhook) bool { return !bytes.Equal(w.ClientConfig.CABundle, bundle) }) {
		c.bundleOK.Store(true)
		return nil
	}
	cfg = cfg.DeepCopy()
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig.CABundle = bundle
	}
	if _, err := hooks.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update the caBundle of MutatingWebhookConfiguration %s: %w", c.cfg.WebhookConfiguration, err)
	}
	c.bundleOK.Store(true)
	c.log.Info("caBundle updated", "configuration", c.cfg.WebhookConfiguration)
	return nil
}

type admissionWebhook = admissionregistrationv1.MutatingWebhook

// webhookConfiguration reads the webhook configuration whose caBundle the webhook keeps.
func (c *certs) webhookConfiguration(ctx context.Context) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	cfg, err := c.cfg.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, c.cfg.WebhookConfiguration, metav1.GetOptions{})
	if err != nil {
		c.bundleOK.Store(false)
		return nil, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", c.cfg.WebhookConfiguration, err)
	}
	return cfg, nil
}

// maxKeptCAs bounds the CAs of an earlier Secret kept trusted beside a new one.
const maxKeptCAs = 3

// validCAs returns, as PEM, the CA certificates in hook's caBundle that are valid at now and
// not in have: those an earlier Secret's certificates may still be served under.
func validCAs(hook *admissionregistrationv1.MutatingWebhookConfiguration, now time.Time, have []byte) []byte {
	if len(hook.Webhooks) == 0 {
		return nil
	}
	var out []byte
	rest, kept := hook.Webhooks[0].ClientConfig.CABundle, 0
	for kept < maxKeptCAs {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil || !cert.IsCA || now.After(cert.NotAfter) || bytes.Contains(have, pemCert(cert.Raw)) {
			continue
		}
		out = append(out, pemCert(cert.Raw)...)
		kept++
	}
	return out
}

// ownedBy says whether s names owner among its owners, by UID.
func ownedBy(s *corev1.Secret, owner metav1.OwnerReference) bool {
	return slices.ContainsFunc(s.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == owner.UID })
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
