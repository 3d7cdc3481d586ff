package charts

import (
	"context"
	"fmt"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// TemplateKubeVersion is the Kubernetes version [Template] renders for.
const TemplateKubeVersion = "v1.37.2"

// Template renders the embedded chart as `helm template` does, without a cluster: values are
// checked against values.schema.json, and the release's Manifest and Info.Notes hold the
// rendered objects and NOTES.txt. It returns the schema's or a template's error as Helm
// reports it.
func Template(ctx context.Context, releaseName, namespace string, vals map[string]any) (*release.Release, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(action.NewConfiguration())
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName, inst.Namespace = releaseName, namespace
	inst.Replace = true
	// Without a cluster Helm assumes Kubernetes 1.20, older than the chart's kubeVersion.
	if inst.KubeVersion, err = common.ParseKubeVersion(TemplateKubeVersion); err != nil {
		return nil, err
	}
	rel, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", Name, err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("render chart %s: unexpected release type %T", Name, rel)
	}
	return r, nil
}
