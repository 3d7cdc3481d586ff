package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/cloister-dev/cloister/injector"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// releaseName is the Helm release `cloister install` makes, one per namespace.
const releaseName = "cloister"

type installFlags struct {
	kube       kubeFlags
	simulation bool
	simDir     string
	values     []string
	set        []string
	wait       bool
	timeout    time.Duration
}

func (a *app) newInstallCmd() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install or upgrade Cloister on a Kubernetes cluster (the chart built into this binary)",
		Long: `Install the Cloister chart built into this binary (charts/cloister) with the Helm SDK: the
Coordinator, its Services and volume, and the admission webhook that turns pods labelled
cloister.dev/workload into Cloister workloads. If the release exists it is upgraded to this
chart, keeping the values it was installed with unless --values or --set change them.

Several Coordinator replicas (high availability) keep their state in Secrets of the namespace:
--set coordinator.replicas=3 --set coordinator.state=kubernetes (docs/kubernetes.md).

--simulation runs everything on a simulated SGX platform: NOTHING IS PROTECTED. The platform is
made in --sim-dir (kept there: ` + "`cloister verify --simulation DIR`" + ` needs it) or reused if it is
there, and stored in the cluster as a Secret. Without --simulation the Coordinator needs SGX
(values sgx.devicePlugin and collateral; see docs/kubernetes.md) and refuses to start without it.`,
		Example: `  cloister install --simulation --wait
  cloister install --values intel.yaml --set image.repository=registry.example/cloister/coordinator --wait
  cloister install --simulation --set coordinator.replicas=3 --set coordinator.state=kubernetes --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runInstall(cmd, &f) },
	}
	f.kube.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.simulation, "simulation", false, "run on a simulated SGX platform (NOT secure)")
	fl.StringVar(&f.simDir, "sim-dir", "", "the simulated platform's directory, made if missing (default: CONFIG_DIR/kubernetes/NAMESPACE/simulation)")
	fl.StringArrayVarP(&f.values, "values", "f", nil, "values file (YAML) for the chart (repeatable; later files win)")
	fl.StringArrayVar(&f.set, "set", nil, "chart value KEY=VALUE, as helm --set (repeatable; wins over --values)")
	fl.BoolVar(&f.wait, "wait", false, "wait until every object is ready (the Coordinator serving, the webhook ready)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// Releaser installs and removes the chart built into cloister, as a Helm release. Package
// charts implements it with the Helm SDK (charts.Releases); cmd/cloister passes it to [Main].
// It is an interface, with no type from package charts, so that this package does not link Helm
// and cloister-coordinator, built from it, stays small.
type Releaser interface {
	ParseValues(b []byte) (map[string]any, error)
	ParseSet(s string, vals map[string]any) error
	Install(ctx context.Context, kubeconfig genericclioptions.RESTClientGetter, name, namespace string,
		vals map[string]any, wait bool, timeout time.Duration, log io.Writer) (struct {
		Revision int
		Status   string
		Notes    string
	}, error)
	Uninstall(kubeconfig genericclioptions.RESTClientGetter, name, namespace string,
		wait bool, timeout time.Duration, log io.Writer) (string, error)
}

// releaser returns a.helm, or an error in a binary built without it.
func (a *app) releaser() (Releaser, error) {
	if a.helm == nil {
		return nil, errors.New("this binary cannot install charts; use cloister")
	}
	return a.helm, nil
}

// installValues merges --values files, then --set, then what --simulation implies.
func (a *app) installValues(helm Releaser, f *installFlags) (map[string]any, error) {
	vals := map[string]any{}
	for _, p := range f.values {
		b, err := readBounded(p, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("--values: %w", err)
		}
		v, err := helm.ParseValues(b)
		if err != nil {
			return nil, fmt.Errorf("--values %s: %w", p, err)
		}
		vals = mergeMaps(vals, v)
	}
	for _, s := range f.set {
		if err := helm.ParseSet(s, vals); err != nil {
			return nil, usageError(fmt.Errorf("--set %q: %w; expected KEY=VALUE", s, err))
		}
	}
	if !f.simulation {
		return vals, nil
	}
	dir := f.simDir
	if dir == "" {
		base, err := a.configDir(&connFlags{})
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(base, "kubernetes", f.kube.namespace, "simulation")
	}
	if _, err := os.Stat(filepath.Join(dir, "platform.json")); errors.Is(err, os.ErrNotExist) {
		if _, err := sim.Create(dir, sim.Options{}); err != nil {
			return nil, fmt.Errorf("make a simulated platform: %w", err)
		}
	}
	data, err := injector.SimSecretData(dir)
	if err != nil {
		return nil, err
	}
	files := make(map[string]any, len(data))
	for k, v := range data {
		files[k] = base64.StdEncoding.EncodeToString(v)
	}
	f.simDir = dir
	vals["simulation"] = true
	vals["simulationPlatform"] = map[string]any{"files": files}
	return vals, nil
}

func (a *app) runInstall(cmd *cobra.Command, f *installFlags) error {
	start := time.Now()
	helm, err := a.releaser()
	if err != nil {
		return err
	}
	vals, err := a.installValues(helm, f)
	if err != nil {
		return err
	}
	r, err := helm.Install(cmd.Context(), f.kube.getter(), releaseName, f.kube.namespace, vals, f.wait, f.timeout, a.stderr)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Release %s (revision %d) %s in namespace %s in %s.\n", releaseName, r.Revision, r.Status, f.kube.namespace, time.Since(start).Round(time.Millisecond))
	if f.simulation {
		fmt.Fprintf(w, "The simulated platform is in %s: verify with `cloister verify --namespace %s --simulation %s`.\n", f.simDir, f.kube.namespace, f.simDir)
	}
	fmt.Fprintf(w, "\n%s\n", r.Notes)
	return nil
}

func (a *app) newUninstallCmd() *cobra.Command {
	var f struct {
		kube    kubeFlags
		wait    bool
		timeout time.Duration
	}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove Cloister from a Kubernetes cluster",
		Long: `Remove what ` + "`cloister install`" + ` created in the namespace: the Coordinator, the webhook and its
configuration, the Services, RBAC and the simulated platform's Secret (the webhook's
certificate Secret goes with its configuration, by the garbage collector). The claim holding the
Coordinator's sealed state is kept (coordinator.persistence.keepOnUninstall, the default), and
so are the state Secrets of coordinator.state kubernetes (labelled cloister.dev/state): a new
install in the same namespace finds the deployment again. The namespace itself is kept.`,
		Example: `  cloister uninstall --namespace cloister`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			helm, err := a.releaser()
			if err != nil {
				return err
			}
			info, err := helm.Uninstall(f.kube.getter(), releaseName, f.kube.namespace, f.wait, f.timeout, a.stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Uninstalled release %s from namespace %s.\n", releaseName, f.kube.namespace)
			if info != "" {
				fmt.Fprintln(cmd.OutOrStdout(), info)
			}
			return nil
		},
	}
	f.kube.register(cmd)
	cmd.Flags().BoolVar(&f.wait, "wait", false, "wait until the objects are gone")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// mergeMaps returns dst with src merged in: nested maps merge, anything else in src wins.
func mergeMaps(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}
