package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"helm.sh/helm/v4/pkg/strvals"

	"github.com/cloister-dev/cloister/charts"
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

--simulation runs everything on a simulated SGX platform: NOTHING IS PROTECTED. The platform is
made in --sim-dir (kept there: ` + "`cloister verify --simulation DIR`" + ` needs it) or reused if it is
there, and stored in the cluster as a Secret. Without --simulation the Coordinator needs SGX
(values sgx.devicePlugin and collateral; see docs/kubernetes.md) and refuses to start without it.`,
		Example: `  cloister install --simulation --wait
  cloister install --values intel.yaml --set image.repository=registry.example/cloister/coordinator --wait`,
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

// helmConfig is a Helm action configuration for the cluster and namespace of f, logging at
// warning level and above to w.
func helmConfig(f *kubeFlags, w io.Writer) (*action.Configuration, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := cfg.Init(f.getter(), f.namespace, "secret"); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

// installValues merges --values files, then --set, then what --simulation implies.
func (a *app) installValues(f *installFlags) (map[string]any, error) {
	vals := map[string]any{}
	for _, p := range f.values {
		b, err := readBounded(p, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("--values: %w", err)
		}
		v, err := loader.LoadValues(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("--values %s: %w", p, err)
		}
		vals = mergeMaps(vals, v)
	}
	for _, s := range f.set {
		if err := strvals.ParseInto(s, vals); err != nil {
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
	files, err := charts.PlatformFiles(dir)
	if err != nil {
		return nil, err
	}
	f.simDir = dir
	vals["simulation"] = true
	vals["simulationPlatform"] = map[string]any{"files": files}
	return vals, nil
}

func (a *app) runInstall(cmd *cobra.Command, f *installFlags) error {
	start := time.Now()
	vals, err := a.installValues(f)
	if err != nil {
		return err
	}
	ch, err := charts.Load()
	if err != nil {
		return err
	}
	cfg, err := helmConfig(&f.kube, a.stderr)
	if err != nil {
		return err
	}
	strategy := kube.HookOnlyStrategy
	if f.wait {
		strategy = kube.StatusWatcherStrategy
	}
	ctx := cmd.Context()
	var rel any
	hist := action.NewHistory(cfg)
	hist.Max = 1
	_, herr := hist.Run(releaseName)
	switch {
	case errors.Is(herr, driver.ErrReleaseNotFound):
		inst := action.NewInstall(cfg)
		inst.ReleaseName, inst.Namespace, inst.CreateNamespace = releaseName, f.kube.namespace, true
		inst.WaitStrategy, inst.Timeout = strategy, f.timeout
		inst.ServerSideApply = true
		rel, err = inst.RunWithContext(ctx, ch, vals)
	case herr != nil:
		return fmt.Errorf("look for release %s in namespace %s: %w", releaseName, f.kube.namespace, herr)
	default:
		up := action.NewUpgrade(cfg)
		up.Namespace, up.WaitStrategy, up.Timeout = f.kube.namespace, strategy, f.timeout
		// Keep what the release was installed with; --values and --set change it.
		up.ReuseValues = true
		up.ServerSideApply = "auto"
		rel, err = up.RunWithContext(ctx, releaseName, ch, vals)
	}
	if err != nil {
		return fmt.Errorf("install chart %s in namespace %s: %w", charts.Name, f.kube.namespace, err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return fmt.Errorf("install: unexpected release type %T", rel)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Release %s (revision %d) %s in namespace %s in %s.\n", r.Name, r.Version, r.Info.Status, r.Namespace, time.Since(start).Round(time.Millisecond))
	if f.simulation {
		fmt.Fprintf(w, "The simulated platform is in %s: verify with `cloister verify --namespace %s --simulation %s`.\n", f.simDir, f.kube.namespace, f.simDir)
	}
	fmt.Fprintf(w, "\n%s\n", r.Info.Notes)
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
configuration, the Services, RBAC and the simulated platform's Secret. The claim holding the
Coordinator's sealed state is kept (coordinator.persistence.keepOnUninstall, the default): a
new install in the same namespace finds the deployment again. The namespace itself is kept.`,
		Example: `  cloister uninstall --namespace cloister`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := helmConfig(&f.kube, a.stderr)
			if err != nil {
				return err
			}
			u := action.NewUninstall(cfg)
			u.Timeout = f.timeout
			u.WaitStrategy = kube.HookOnlyStrategy
			if f.wait {
				u.WaitStrategy = kube.StatusWatcherStrategy
			}
			res, err := u.Run(releaseName)
			if errors.Is(err, driver.ErrReleaseNotFound) {
				return fmt.Errorf("no Cloister release in namespace %s", f.kube.namespace)
			}
			if err != nil {
				return fmt.Errorf("uninstall from namespace %s: %w", f.kube.namespace, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Uninstalled release %s from namespace %s.\n", releaseName, f.kube.namespace)
			if res != nil && res.Info != "" {
				fmt.Fprintln(cmd.OutOrStdout(), res.Info)
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
