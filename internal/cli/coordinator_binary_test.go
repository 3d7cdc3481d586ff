package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/charts"
)

// charts.Releases is what cmd/cloister passes to MainWithHelm.
var _ Releaser = charts.Releases{}

// TestCoordinatorBinaryCommands: cloister-coordinator has the commands that run in the cluster
// and no other (its root is built by the same constructors as cloister's).
func TestCoordinatorBinaryCommands(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	var names []string
	for _, c := range a.newCoordinatorRootCmd().Commands() {
		names = append(names, c.Name())
	}
	if !slices.Equal(names, []string{"coordinator", "injector"}) {
		t.Errorf("cloister-coordinator commands %v; want coordinator and injector", names)
	}
	var out, errb bytes.Buffer
	if code := CoordinatorMain([]string{"install"}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), `unknown command "install"`) {
		t.Errorf("cloister-coordinator install: exit %d, %s; want it unknown", code, errb.String())
	}
}

// TestInstallWithoutHelm: a command tree built without the Helm SDK says so instead of
// failing obscurely.
func TestInstallWithoutHelm(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main([]string{"install", "--simulation", "--sim-dir", t.TempDir(), "--kubeconfig", "/nonexistent"}, nil, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "this binary cannot install charts; use cloister") {
		t.Errorf("install without Helm: exit %d, %s", code, errb.String())
	}
}
