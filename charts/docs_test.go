package charts

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/cloister-dev/cloister/store/kubestate"
)

// TestDocsHighAvailability renders the chart with what the "High availability" section of
// docs/kubernetes.md shows, parsed as `cloister install` parses it: its ha.yaml (--values) and
// its --set flags. Both must give the documented replicas, state and PDB, and the section must
// quote the schema's errors as the chart gives them.
func TestDocsHighAvailability(t *testing.T) {
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "## High availability\n")
	if start < 0 {
		t.Fatal(`docs/kubernetes.md has no "## High availability" section`)
	}
	sec := text[start:]
	sec = sec[:strings.Index(sec[3:], "\n## ")+3]
	yamlStart := strings.Index(sec, "```yaml\n")
	if yamlStart < 0 {
		t.Fatal("the section has no ha.yaml block")
	}
	block := sec[yamlStart+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]

	var r Releases
	fromFile, err := r.ParseValues([]byte(block))
	if err != nil {
		t.Fatalf("ha.yaml of docs/kubernetes.md: %v\n%s", err, block)
	}
	fromSet := map[string]any{}
	for _, s := range []string{"coordinator.replicas=3", "coordinator.state=kubernetes"} {
		if !strings.Contains(sec, "--set "+s) {
			t.Fatalf("the section no longer shows --set %s", s)
		}
		if err := r.ParseSet(s, fromSet); err != nil {
			t.Fatal(err)
		}
	}
	for name, vals := range map[string]map[string]any{"--values ha.yaml": fromFile, "--set": fromSet} {
		t.Run(name, func(t *testing.T) {
			all := simValues(t)
			all["coordinator"] = vals["coordinator"]
			objs, _ := render(t, all)
			d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
			if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
				t.Errorf("%d replicas, strategy %s; want 3, RollingUpdate", *d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			if pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget/cloister"); pdb.Spec.MaxUnavailable.String() != "1" {
				t.Errorf("PDB %+v; want maxUnavailable 1", pdb.Spec)
			}
		})
	}

	// The errors the section quotes are the chart's.
	vals := simValues(t)
	vals["coordinator"] = map[string]any{"replicas": 3, "state": "embedded"}
	_, err = Template(t.Context(), "cloister", testNS, vals)
	if err == nil {
		t.Fatal("three replicas on the embedded state rendered")
	}
	for _, quoted := range []string{"at '/coordinator/state': value must be 'kubernetes'", "at '/coordinator/replicas': maximum: got 3, want 1"} {
		if !strings.Contains(sec, quoted) {
			t.Errorf("the section no longer quotes %q", quoted)
		}
		if !strings.Contains(err.Error(), quoted) {
			t.Errorf("the section quotes %q; the chart says %v", quoted, err)
		}
	}
}

// TestDocsStartOver: the "Starting over" commands of docs/kubernetes.md name the key shelf
// Secret the Coordinator really writes for the chart's --state-name (kubestate, on a fake
// API), the Deployment the chart renders, and the label that the end-of-deployment command
// deletes carries the shelf too.
func TestDocsStartOver(t *testing.T) {
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	objs, _ := render(t, haValues(t, 3, nil))
	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	var stateName string
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--state-name="); ok {
			stateName = v
		}
	}
	if stateName == "" {
		t.Fatalf("coordinator args %q have no --state-name", d.Spec.Template.Spec.Containers[0].Args)
	}

	// The shelf as the Coordinator names and labels it.
	ns := "cloister" // cloister install's namespace, which the docs use
	c := fake.NewClientset()
	r, err := kubestate.New(c, kubestate.Options{Namespace: ns, Name: stateName})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Keys().PutRecovery(t.Context(), []byte("record")); err != nil {
		t.Fatal(err)
	}
	list, err := c.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("Secrets after shelving a record: %v, %v; want the shelf alone", list, err)
	}
	shelf := list.Items[0]

	for _, want := range []string{
		"kubectl delete secret --namespace " + ns + " " + shelf.Name + "\n",
		"kubectl rollout restart deployment/" + d.Name + " --namespace " + ns + "\n",
		"cloister.dev/state=" + shelf.Labels["cloister.dev/state"] + "`",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("docs/kubernetes.md lacks %q (the shelf is Secret %s labelled %v, the Deployment %s)", want, shelf.Name, shelf.Labels, d.Name)
		}
	}
	if shelf.Labels["cloister.dev/state"] != stateName {
		t.Errorf("shelf labels %v; want cloister.dev/state=%s, which the documented end-of-deployment command deletes", shelf.Labels, stateName)
	}
}
