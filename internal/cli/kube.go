package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// defaultNamespace is where `cloister install` puts Cloister unless told otherwise, and where
// every command looks for it.
const defaultNamespace = "cloister"

// Labels the chart puts on the Coordinator's and the injector's pods.
const (
	labelName      = "app.kubernetes.io/name=cloister"
	labelComponent = "app.kubernetes.io/component"
)

// kubeFlags say which cluster and namespace a command talks to.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (f *kubeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster (default: $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.context, "kube-context", "", "kubeconfig context (default: its current context)")
	fl.StringVarP(&f.namespace, "namespace", "n", defaultNamespace, "namespace of the Cloister installation")
}

// set reports whether the command line named a cluster or namespace.
func (f *kubeFlags) set(cmd *cobra.Command) bool {
	fl := cmd.Flags()
	return fl.Changed("kubeconfig") || fl.Changed("kube-context") || fl.Changed("namespace")
}

// getter is what Helm and client-go build their clients from.
func (f *kubeFlags) getter() *genericclioptions.ConfigFlags {
	g := genericclioptions.NewConfigFlags(false)
	g.KubeConfig, g.Context, g.Namespace = &f.kubeconfig, &f.context, &f.namespace
	return g
}

// clients returns the cluster's REST configuration and a clientset.
func (f *kubeFlags) clients() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := f.getter().ToRESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, cs, nil
}

// coordinatorPod returns a ready Coordinator pod of the installation in f.namespace, and the
// container port of its client API. With none ready it returns one whose container has started
// (its status endpoint answers) but is not ready: a Coordinator in recovery mode, which refuses
// workloads (so its readiness probe fails) but must still be reached for `cloister status` and
// `cloister recover`.
func coordinatorPod(ctx context.Context, cs kubernetes.Interface, namespace string) (*corev1.Pod, int, error) {
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labelName + "," + labelComponent + "=coordinator"})
	if err != nil {
		return nil, 0, fmt.Errorf("find the Coordinator in namespace %s: %w", namespace, err)
	}
	if len(pods.Items) == 0 {
		return nil, 0, fmt.Errorf("no Coordinator pod in namespace %s; expected one from `cloister install --namespace %s`", namespace, namespace)
	}
	p, why := pickCoordinatorPod(pods.Items)
	if p == nil {
		return nil, 0, fmt.Errorf("no ready Coordinator pod in namespace %s (%s); see `cloister check --namespace %s`", namespace, strings.Join(why, "; "), namespace)
	}
	return clientAPIPort(p)
}

// pickCoordinatorPod returns the first ready pod, else the first started one that is not being
// deleted, else nil and why each pod is not ready.
func pickCoordinatorPod(pods []corev1.Pod) (*corev1.Pod, []string) {
	var why []string
	var started *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if ok, reason := podReady(p); !ok {
			why = append(why, p.Name+": "+reason)
			if started == nil && p.DeletionTimestamp == nil && containerStarted(p) {
				started = p
			}
			continue
		}
		return p, nil
	}
	return started, why
}

// containerStarted reports whether every container of p runs and passed its startup probe.
func containerStarted(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.Started == nil || !*cs.Started {
			return false
		}
	}
	return true
}

func clientAPIPort(p *corev1.Pod) (*corev1.Pod, int, error) {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "client-api" {
				return p, int(port.ContainerPort), nil
			}
		}
	}
	return nil, 0, fmt.Errorf("the Coordinator pod %s/%s has no port named client-api", p.Namespace, p.Name)
}

// portForward forwards a free port on 127.0.0.1 to port of the pod through the API server, as
// `kubectl port-forward` does, until ctx ends, and returns the local address.
func portForward(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, pod *corev1.Pod, port int) (string, error) {
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	// WebSocket first (Kubernetes 1.31 and later), SPDY for older API servers.
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool { return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) })
	}
	ready := make(chan struct{})
	what := fmt.Sprintf("port-forward to %s/%s:%d", pod.Namespace, pod.Name, port)
	fw, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, ready, io.Discard, io.Discard)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("ended before it was ready")
		}
		return "", fmt.Errorf("%s: %w", what, err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		return "", fmt.Errorf("%s: local ports %v: %v", what, ports, err)
	}
	return "127.0.0.1:" + strconv.Itoa(int(ports[0].Local)), nil
}

// reachCoordinator points f at the in-cluster Coordinator through a port-forward that lasts as
// long as the command's context. The pinned root is kept under the cluster's API server and the
// namespace, not the forward's random local port.
func (a *app) reachCoordinator(cmd *cobra.Command, f *connFlags) error {
	cfg, cs, err := f.kube.clients()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pod, port, err := coordinatorPod(ctx, cs, f.kube.namespace)
	if err != nil {
		return err
	}
	addr, err := portForward(ctx, cfg, cs, pod, port)
	if err != nil {
		return err
	}
	host := cfg.Host
	if u, err := url.Parse(cfg.Host); err == nil && u.Host != "" {
		host = u.Host
	}
	f.addr = addr
	f.pinKey = "kube_" + host + "_" + f.kube.namespace
	return nil
}

// podReady reports whether the pod is Ready and, if not, the most telling reason: a container
// that exited (with its termination message), one waiting (CrashLoopBackOff, image errors), or a
// condition the scheduler or kubelet set.
func podReady(p *corev1.Pod) (bool, string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true, ""
		}
	}
	var reasons []string
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.LastTerminationState.Terminated; t != nil {
			reasons = append(reasons, fmt.Sprintf("container %s exited with code %d (%s): %s", cs.Name, t.ExitCode, t.Reason, lastLines(t.Message, 3)))
		}
		if t := cs.State.Terminated; t != nil {
			reasons = append(reasons, fmt.Sprintf("container %s exited with code %d (%s): %s", cs.Name, t.ExitCode, t.Reason, lastLines(t.Message, 3)))
		}
		if w := cs.State.Waiting; w != nil && w.Reason != "CrashLoopBackOff" {
			reasons = append(reasons, fmt.Sprintf("container %s waiting: %s %s", cs.Name, w.Reason, w.Message))
		}
		if cs.State.Running != nil && !cs.Ready {
			if cs.Started != nil && *cs.Started {
				// The Coordinator's readiness is its workload API, which refuses activations
				// in recovery mode and while a replica has no data key.
				reasons = append(reasons, fmt.Sprintf("container %s serves but is not ready: it refuses workloads (recovery mode, or no data key yet); see `cloister status`", cs.Name))
			} else {
				reasons = append(reasons, fmt.Sprintf("container %s running, not ready yet (probe on its status endpoint)", cs.Name))
			}
		}
	}
	if len(reasons) == 0 {
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				reasons = append(reasons, fmt.Sprintf("%s: %s", c.Type, c.Message))
			}
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "phase "+string(p.Status.Phase))
	}
	return false, strings.Join(reasons, "; ")
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
