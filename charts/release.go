package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Releases installs, upgrades and removes the embedded chart as a Helm release, with the Helm
// SDK. The cloister CLI gets it from its main package (cmd/cloister) rather than importing this
// package, so that cloister-coordinator, which shares the CLI's command code, runs in the
// cluster and is measured into the enclave, does not link Helm.
type Releases struct{}

// ParseValues parses a values file (YAML), as `helm install --values` does.
func (Releases) ParseValues(b []byte) (map[string]any, error) {
	return loader.LoadValues(bytes.NewReader(b))
}

// ParseSet merges one KEY=VALUE into vals, as `helm install --set` does.
func (Releases) ParseSet(s string, vals map[string]any) error {
	return strvals.ParseInto(s, vals)
}

// ReleaseInfo is what Install reports about the release it made or upgraded.
type ReleaseInfo = struct {
	Revision int
	Status   string
	Notes    string
}

func config(kubeconfig genericclioptions.RESTClientGetter, namespace string, log io.Writer) (*action.Configuration, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := cfg.Init(kubeconfig, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

func strategy(wait bool) kube.WaitStrategy {
	if wait {
		return kube.StatusWatcherStrategy
	}
	return kube.HookOnlyStrategy
}

// Install installs the chart as release name in namespace (made if missing), or upgrades the
// release to this chart keeping the values it was installed with, vals merged over them. With
// wait it waits, up to timeout, until every object is ready. Helm logs warnings to log.
func (Releases) Install(ctx context.Context, kubeconfig genericclioptions.RESTClientGetter, name, namespace string,
	vals map[string]any, wait bool, timeout time.Duration, log io.Writer) (ReleaseInfo, error) {
	ch, err := Load()
	if err != nil {
		return ReleaseInfo{}, err
	}
	cfg, err := config(kubeconfig, namespace, log)
	if err != nil {
		return ReleaseInfo{}, err
	}
	var rel any
	hist := action.NewHistory(cfg)
	hist.Max = 1
	_, herr := hist.Run(name)
	switch {
	case errors.Is(herr, driver.ErrReleaseNotFound):
		inst := action.NewInstall(cfg)
		inst.ReleaseName, inst.Namespace, inst.CreateNamespace = name, namespace, true
		inst.WaitStrategy, inst.Timeout = strategy(wait), timeout
		inst.ServerSideApply = true
		rel, err = inst.RunWithContext(ctx, ch, vals)
	case herr != nil:
		return ReleaseInfo{}, fmt.Errorf("look for release %s in namespace %s: %w", name, namespace, herr)
	default:
		up := action.NewUpgrade(cfg)
		up.Namespace, up.WaitStrategy, up.Timeout = namespace, strategy(wait), timeout
		// Keep what the release was installed with; --values and --set change it.
		up.ReuseValues = true
		up.ServerSideApply = "auto"
		rel, err = up.RunWithContext(ctx, name, ch, vals)
	}
	if err != nil {
		return ReleaseInfo{}, fmt.Errorf("install chart %s in namespace %s: %w", Name, namespace, err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return ReleaseInfo{}, fmt.Errorf("install: unexpected release type %T", rel)
	}
	return ReleaseInfo{Revision: r.Version, Status: r.Info.Status.String(), Notes: r.Info.Notes}, nil
}

// Uninstall removes release name from namespace and returns what Helm says about it (the
// resources it kept). With wait it waits, up to timeout, until the objects are gone.
func (Releases) Uninstall(kubeconfig genericclioptions.RESTClientGetter, name, namespace string,
	wait bool, timeout time.Duration, log io.Writer) (string, error) {
	cfg, err := config(kubeconfig, namespace, log)
	if err != nil {
		return "", err
	}
	u := action.NewUninstall(cfg)
	u.Timeout, u.WaitStrategy = timeout, strategy(wait)
	res, err := u.Run(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return "", fmt.Errorf("no Cloister release in namespace %s", namespace)
	}
	if err != nil {
		return "", fmt.Errorf("uninstall from namespace %s: %w", namespace, err)
	}
	if res == nil {
		return "", nil
	}
	return res.Info, nil
}
