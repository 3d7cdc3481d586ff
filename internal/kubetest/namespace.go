package kubetest

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreateNamespace creates the namespace and waits until the controller manager has given it
// what pods need: the "default" service account and the "kube-root-ca.crt" config map (which
// every service-account token volume mounts). Pods created before then are refused or wait.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return c.waitNamespaceReady(ctx, name)
}

// waitNamespaceReady waits until the namespace has its "default" service account and its
// "kube-root-ca.crt" config map.
func (c *Cluster) waitNamespaceReady(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for {
		_, errSA := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", getOpts)
		_, errCM := c.Client.CoreV1().ConfigMaps(name).Get(ctx, "kube-root-ca.crt", getOpts)
		if errSA == nil && errCM == nil {
			return nil
		}
		for _, err := range []error{errSA, errCM} {
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("namespace %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s: no default service account and kube-root-ca.crt after %v (is kube-controller-manager running? see its log)", name, ReadyTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
