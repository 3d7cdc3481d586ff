package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForward forwards a free port on 127.0.0.1 to port of the pod, through the API server,
// the kubelet and containerd, as `kubectl port-forward` does, until ctx ends. It returns the
// local address (host:port) once the forward listens.
func (c *Cluster) PortForward(ctx context.Context, namespace, pod string, port int) (string, error) {
	u := c.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(c.Config)
	if err != nil {
		return "", err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"},
		[]string{"0:" + strconv.Itoa(port)}, ready, io.Discard, io.Discard)
	if err != nil {
		return "", fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("ended before it was ready")
		}
		return "", fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		return "", fmt.Errorf("port-forward to %s/%s:%d: local ports %v: %v", namespace, pod, port, ports, err)
	}
	return "127.0.0.1:" + strconv.Itoa(int(ports[0].Local)), nil
}
