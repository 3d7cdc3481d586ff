package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
)

func (a *app) newCheckCmd() *cobra.Command {
	var f struct {
		kube    kubeFlags
		timeout time.Duration
		out     outputFlag
	}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Wait until Cloister on Kubernetes is ready, and say what is not",
		Long: `Wait until the Coordinator installed by ` + "`cloister install`" + ` serves (its status endpoint
answers) and, when installed, the injection webhook is ready and registered with its CA bundle.
On timeout it prints each part that is not ready and why: a container's last words (the
Coordinator says "no SGX" when a node lacks SGX and simulation is off), the scheduler's reason
(no node with the SGX resources), or an image that cannot be pulled. Exits 1 if not ready.`,
		Example: `  cloister check --namespace cloister --timeout 2m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, cs, err := f.kube.clients()
			if err != nil {
				return err
			}
			doc, err := checkInstallation(cmd.Context(), cs, f.kube.namespace, f.timeout)
			if err != nil {
				return err
			}
			if err := f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printCheck(w, doc) }); err != nil {
				return err
			}
			if !doc.Ready {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.kube.register(cmd)
	cmd.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for readiness; 0 checks once")
	f.out.register(cmd)
	return cmd
}

// checkInstallation polls the installation in namespace until every part is ready or timeout
// passes, and returns the last state.
func checkInstallation(ctx context.Context, cs kubernetes.Interface, namespace string, timeout time.Duration) (*jsonoutput.Check, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		doc, err := checkOnce(ctx, cs, namespace)
		if err != nil {
			return nil, err
		}
		doc.WaitedSeconds = time.Since(start).Round(time.Millisecond).Seconds()
		if doc.Ready || !time.Now().Before(deadline) {
			return doc, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func checkOnce(ctx context.Context, cs kubernetes.Interface, namespace string) (*jsonoutput.Check, error) {
	doc := &jsonoutput.Check{Namespace: namespace, Ready: true}
	deps, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{LabelSelector: labelName})
	if err != nil {
		return nil, fmt.Errorf("list Cloister's deployments in namespace %s: %w", namespace, err)
	}
	found := map[string]*appsv1.Deployment{}
	for i := range deps.Items {
		found[deps.Items[i].Labels[labelComponent]] = &deps.Items[i]
	}
	if found["coordinator"] == nil {
		return nil, fmt.Errorf("no Cloister Coordinator in namespace %s; expected one from `cloister install --namespace %s`", namespace, namespace)
	}
	for _, name := range []string{"coordinator", "injector"} {
		d := found[name]
		if d == nil {
			continue
		}
		if name == "coordinator" {
			doc.Simulation = d.Spec.Template.Annotations["cloister.dev/simulation"] == "true"
		}
		part := jsonoutput.CheckPart{Name: name}
		part.Ready, part.Reason = deploymentReady(ctx, cs, d)
		if part.Ready && name == "injector" {
			part.Ready, part.Reason = webhookRegistered(ctx, cs, namespace)
		}
		doc.Ready = doc.Ready && part.Ready
		doc.Parts = append(doc.Parts, part)
	}
	return doc, nil
}

// deploymentReady reports whether the deployment's pods are ready, or why not.
func deploymentReady(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want && d.Status.ReadyReplicas >= want {
		return true, ""
	}
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	pods, err := cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return false, fmt.Sprintf("list its pods: %v", err)
	}
	if len(pods.Items) == 0 {
		return false, fmt.Sprintf("no pod yet (%d of %d replicas ready)", d.Status.ReadyReplicas, want)
	}
	var why []string
	for i := range pods.Items {
		if ok, reason := podReady(&pods.Items[i]); !ok {
			why = append(why, "pod "+pods.Items[i].Name+": "+reason)
		}
	}
	if len(why) == 0 {
		return false, fmt.Sprintf("%d of %d replicas ready", d.Status.ReadyReplicas, want)
	}
	return false, strings.Join(why, "; ")
}

// webhookRegistered reports whether the injector's webhook configuration carries a CA bundle,
// which the injector (or cert-manager) writes once its certificate exists.
func webhookRegistered(ctx context.Context, cs kubernetes.Interface, namespace string) (bool, string) {
	l, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: labelName + "," + labelComponent + "=injector"})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Sprintf("read the webhook configuration: %v", err)
	}
	for _, mw := range l.Items {
		if !strings.HasSuffix(mw.Name, "-"+namespace) {
			continue
		}
		for _, w := range mw.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, fmt.Sprintf("webhook configuration %s has no caBundle yet (the injector writes it)", mw.Name)
			}
		}
		return true, ""
	}
	return false, "no MutatingWebhookConfiguration for namespace " + namespace
}

func printCheck(w io.Writer, d *jsonoutput.Check) {
	if d.Simulation {
		fmt.Fprintln(w, "SIMULATION MODE: this installation is NOT protected by SGX.")
	}
	for _, p := range d.Parts {
		if p.Ready {
			fmt.Fprintf(w, "%-12s ready\n", p.Name)
		} else {
			fmt.Fprintf(w, "%-12s NOT ready: %s\n", p.Name, p.Reason)
		}
	}
	if d.Ready {
		fmt.Fprintf(w, "Cloister in namespace %s is ready.\n", d.Namespace)
	} else {
		fmt.Fprintf(w, "Cloister in namespace %s is not ready after %.0fs.\n", d.Namespace, d.WaitedSeconds)
	}
}
