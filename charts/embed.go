// Package charts holds the Helm chart of Cloister (charts/cloister), embedded so that
// `cloister install` needs no chart repository and installs exactly the chart of its own
// version.
package charts

import (
	"embed"
	"fmt"
	"io/fs"
	"time"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// Name is the chart's name and the directory it lives in.
const Name = "cloister"

//go:embed all:cloister
var files embed.FS

// FS returns the chart's files, rooted at the chart's directory (Chart.yaml at its top).
func FS() fs.FS {
	sub, err := fs.Sub(files, Name)
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// Load returns the embedded chart, parsed by Helm's loader as `helm install ./cloister`
// would: templates, values, values.schema.json and NOTES.txt.
func Load() (*chart.Chart, error) {
	var bf []*archive.BufferedFile
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		bf = append(bf, &archive.BufferedFile{Name: p, ModTime: time.Unix(0, 0), Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded chart: %w", err)
	}
	ch, err := loader.LoadFiles(bf)
	if err != nil {
		return nil, fmt.Errorf("load the embedded chart: %w", err)
	}
	return ch, nil
}
