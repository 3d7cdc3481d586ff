package charts

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// haValues are simulation values with n replicas on the kubernetes state, extra merged into
// coordinator.
func haValues(t *testing.T, n int, extra map[string]any) map[string]any {
	t.Helper()
	vals := simValues(t)
	c := map[string]any{"replicas": n, "state": "kubernetes"}
	for k, v := range extra {
		c[k] = v
	}
	vals["coordinator"] = c
	return vals
}

// TestSingleReplicaEmbedded: the default Coordinator keeps its state on a claim, is replaced
// with Recreate (the claim and the store's lock cannot be shared), has no token, no RBAC, no
// PDB, no peers Service, and none of the shared-state flags.
func TestSingleReplicaEmbedded(t *testing.T) {
	objs, notes := render(t, simValues(t))
	for key := range objs {
		if strings.HasPrefix(key, "PodDisruptionBudget/") || key == "Role/cloister" || key == "RoleBinding/cloister" || key == "Service/cloister-peers" {
			t.Errorf("embedded state renders %s", key)
		}
	}
	get[corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim/cloister-state")
	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("coordinator: %d replicas, strategy %+v; want 1, Recreate", *d.Spec.Replicas, d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	if *pod.AutomountServiceAccountToken || len(pod.TopologySpreadConstraints) != 0 || pod.Affinity != nil {
		t.Errorf("embedded pod: token %v, spread %+v, affinity %+v; want no token, no spread, no affinity", *pod.AutomountServiceAccountToken, pod.TopologySpreadConstraints, pod.Affinity)
	}
	if v := volume(pod, "state"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "cloister-state" {
		t.Errorf("state volume %+v; want the claim cloister-state", v)
	}
	c := pod.Containers[0]
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--state") || strings.HasPrefix(a, "--peer") {
			t.Errorf("embedded coordinator args %q contain %s", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "peer" }) {
		t.Errorf("embedded coordinator ports %+v contain peer", c.Ports)
	}
	checkCoordinatorProbes(t, c)
	if !strings.Contains(notes, "Coordinator: 1 replica, state backend embedded (the claim cloister-state") {
		t.Errorf("NOTES.txt does not give the replicas and the state backend:\n%s", notes)
	}
}

// TestHighAvailability: three replicas on the kubernetes state: emptyDir data, the state and
// peer flags of the contract, a rolling update that never removes the last ready replica, a
// PDB, spread over nodes, the peers Service, and a Role with exactly what the backend needs.
func TestHighAvailability(t *testing.T) {
	objs, notes := render(t, haValues(t, 3, nil))
	if _, ok := objs["PersistentVolumeClaim/cloister-state"]; ok {
		t.Error("kubernetes state renders the state claim")
	}
	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	ru := d.Spec.Strategy.RollingUpdate
	if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable.String() != "0" || ru.MaxSurge.String() != "1" {
		t.Errorf("coordinator: %d replicas, strategy %+v; want 3, RollingUpdate maxUnavailable 0 maxSurge 1", *d.Spec.Replicas, d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	if !*pod.AutomountServiceAccountToken || pod.ServiceAccountName != "cloister" {
		t.Errorf("pod service account %q, token %v; want cloister with a token (it calls the API server)", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	if v := volume(pod, "state"); v == nil || v.EmptyDir == nil {
		t.Errorf("state volume %+v; want an emptyDir (each pod is a new CPU with its own sealed key copy)", v)
	}
	c := pod.Containers[0]
	for _, a := range []string{"--state=kubernetes", "--state-namespace=" + testNS, "--state-name=cloister-state",
		"--peer-addr=:2002", "--peer-service=cloister-peers", "--simulation=/sim"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("coordinator args %q lack %s", c.Args, a)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "peer" && p.ContainerPort == 2002 }) {
		t.Errorf("coordinator ports %+v; want peer 2002", c.Ports)
	}
	checkCoordinatorProbes(t, c)
	sel := map[string]string{"app.kubernetes.io/name": "cloister", "app.kubernetes.io/instance": "cloister", "app.kubernetes.io/component": "coordinator"}
	if len(pod.TopologySpreadConstraints) != 1 {
		t.Fatalf("topology spread %+v; want one constraint", pod.TopologySpreadConstraints)
	}
	tsc := pod.TopologySpreadConstraints[0]
	if tsc.TopologyKey != "kubernetes.io/hostname" || tsc.WhenUnsatisfiable != corev1.ScheduleAnyway || tsc.MaxSkew != 1 ||
		!mapsEqual(tsc.LabelSelector.MatchLabels, sel) || !slices.Equal(tsc.MatchLabelKeys, []string{"pod-template-hash"}) {
		t.Errorf("topology spread %+v; want nodes, ScheduleAnyway, skew 1, the Coordinator's pods of one revision", tsc)
	}
	if pod.Affinity != nil {
		t.Errorf("affinity %+v; want none by default", pod.Affinity)
	}

	pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget/cloister")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil ||
		!mapsEqual(pdb.Spec.Selector.MatchLabels, sel) || pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy != policyv1.IfHealthyBudget {
		t.Errorf("PDB %+v; want maxUnavailable 1 over the Coordinator's pods, unready pods evictable only while the budget holds (IfHealthyBudget: never all at once)", pdb.Spec)
	}

	peers := get[corev1.Service](t, objs, "Service/cloister-peers")
	if peers.Spec.ClusterIP != corev1.ClusterIPNone || peers.Spec.PublishNotReadyAddresses || !mapsEqual(peers.Spec.Selector, sel) ||
		len(peers.Spec.Ports) != 1 || peers.Spec.Ports[0].Name != "peer" || peers.Spec.Ports[0].Port != 2002 ||
		peers.Spec.Ports[0].TargetPort.String() != "peer" || peers.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("peers Service %+v; want headless, ready pods only, the Coordinator's pods, peer 2002/TCP", peers.Spec)
	}

	role := get[rbacv1.Role](t, objs, "Role/cloister")
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list"}},
	}
	if !slices.EqualFunc(role.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs) &&
			len(a.ResourceNames) == 0 && len(a.NonResourceURLs) == 0
	}) {
		t.Errorf("Coordinator Role rules %+v; want exactly %+v", role.Rules, want)
	}
	rb := get[rbacv1.RoleBinding](t, objs, "RoleBinding/cloister")
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "cloister" || len(rb.Subjects) != 1 ||
		rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != "cloister" || rb.Subjects[0].Namespace != testNS {
		t.Errorf("RoleBinding %+v; want Role cloister to ServiceAccount %s/cloister", rb, testNS)
	}
	for key := range objs {
		if strings.HasPrefix(key, "ClusterRole") && strings.Contains(key, "/cloister-confidential") {
			t.Errorf("the Coordinator gets cluster-wide RBAC: %s", key)
		}
	}
	for _, want := range []string{"Coordinator: 3 replicas, state backend kubernetes", "cloister-state", "cloister-peers", "PodDisruptionBudget cloister allows (maxUnavailable 1)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
}

// TestHighAvailabilityOptions: the PDB's minAvailable, a strict spread, and required
// anti-affinity; one replica on the kubernetes state gets the RBAC, the peers Service and a
// rolling update (the new pod gets the key from the old one) but no PDB and no spread.
func TestHighAvailabilityOptions(t *testing.T) {
	objs, _ := render(t, haValues(t, 3, map[string]any{
		"podDisruptionBudget": map[string]any{"minAvailable": 2, "maxUnavailable": ""},
		"topologySpread":      map[string]any{"whenUnsatisfiable": "DoNotSchedule", "topologyKey": "topology.kubernetes.io/zone"},
		"podAntiAffinity":     "required",
	}))
	pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget/cloister")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "2" || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB %+v; want minAvailable 2 only", pdb.Spec)
	}
	pod := get[appsv1.Deployment](t, objs, "Deployment/cloister").Spec.Template.Spec
	if tsc := pod.TopologySpreadConstraints[0]; tsc.WhenUnsatisfiable != corev1.DoNotSchedule || tsc.TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("topology spread %+v; want zones, DoNotSchedule", tsc)
	}
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("affinity %+v; want required pod anti-affinity across zones", pod.Affinity)
	}

	objs, notes := render(t, haValues(t, 1, map[string]any{"podAntiAffinity": "preferred", "apiServer": "127.0.0.1:6443"}))
	if _, ok := objs["PodDisruptionBudget/cloister"]; ok {
		t.Error("one replica renders a PDB (it would only block drains)")
	}
	for _, key := range []string{"Role/cloister", "RoleBinding/cloister", "Service/cloister-peers"} {
		get[any](t, objs, key)
	}
	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || len(d.Spec.Template.Spec.TopologySpreadConstraints) != 0 || d.Spec.Template.Spec.Affinity != nil {
		t.Errorf("one replica on kubernetes state: strategy %+v, spread %+v, affinity %+v; want RollingUpdate, no spread, no anti-affinity",
			d.Spec.Strategy, d.Spec.Template.Spec.TopologySpreadConstraints, d.Spec.Template.Spec.Affinity)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--peer-addr=:2002") {
		t.Errorf("coordinator args %q; want --peer-addr=:2002", args)
	}
	objs, _ = render(t, haValues(t, 1, map[string]any{"listenAddress": "127.0.0.1", "peerPort": 12002}))
	if args := get[appsv1.Deployment](t, objs, "Deployment/cloister").Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--peer-addr=127.0.0.1:12002") {
		t.Errorf("coordinator args %q; want --peer-addr=127.0.0.1:12002 (listenAddress narrows the peer port too)", args)
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["KUBERNETES_SERVICE_HOST"] != "127.0.0.1" || env["KUBERNETES_SERVICE_PORT"] != "6443" {
		t.Errorf("coordinator env %v; want the API server of coordinator.apiServer", env)
	}
	if !strings.Contains(notes, "One replica is not highly") {
		t.Errorf("NOTES.txt for one replica on kubernetes state:\n%s", notes)
	}

	// Preferred anti-affinity, and an affinity of the user's own kept as it is.
	objs, _ = render(t, haValues(t, 2, map[string]any{"podAntiAffinity": "preferred",
		"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "sgx", "operator": "Exists"}}}}}}}}))
	a := get[appsv1.Deployment](t, objs, "Deployment/cloister").Spec.Template.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("affinity %+v; want the given node affinity and preferred pod anti-affinity", a)
	}
}

// TestHighAvailabilityRejects: values the schema or the templates refuse, each with a message
// naming the value and what is expected.
func TestHighAvailabilityRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		coord map[string]any
		want  []string
	}{
		{"three replicas, embedded state", map[string]any{"replicas": 3, "state": "embedded"},
			[]string{"at '/coordinator/state': value must be 'kubernetes'", "at '/coordinator/replicas': maximum: got 3, want 1"}},
		{"no replica", map[string]any{"replicas": 0, "state": "kubernetes"}, []string{"at '/coordinator/replicas': minimum: got 0, want 1"}},
		{"too many replicas", map[string]any{"replicas": 1000, "state": "kubernetes"}, []string{"at '/coordinator/replicas': maximum: got 1,000, want 9"}},
		{"replicas not a number", map[string]any{"replicas": "three", "state": "kubernetes"}, []string{"/coordinator/replicas"}},
		{"unknown state", map[string]any{"state": "etcd"}, []string{"/coordinator/state", "embedded", "kubernetes"}},
		{"unknown anti-affinity", map[string]any{"replicas": 3, "state": "kubernetes", "podAntiAffinity": "hard"}, []string{"/coordinator/podAntiAffinity"}},
		{"PDB maxUnavailable 0", map[string]any{"replicas": 3, "state": "kubernetes", "podDisruptionBudget": map[string]any{"maxUnavailable": 0}},
			[]string{"/coordinator/podDisruptionBudget/maxUnavailable"}},
		{"PDB percentage over 100", map[string]any{"replicas": 3, "state": "kubernetes", "podDisruptionBudget": map[string]any{"maxUnavailable": "150%"}},
			[]string{"/coordinator/podDisruptionBudget/maxUnavailable"}},
		{"PDB both", map[string]any{"replicas": 3, "state": "kubernetes", "podDisruptionBudget": map[string]any{"maxUnavailable": 1, "minAvailable": 2}},
			[]string{"set minAvailable or maxUnavailable, not both"}},
		{"PDB neither", map[string]any{"replicas": 3, "state": "kubernetes", "podDisruptionBudget": map[string]any{"maxUnavailable": ""}},
			[]string{"set minAvailable or maxUnavailable"}},
		{"PDB blocks every drain", map[string]any{"replicas": 3, "state": "kubernetes", "podDisruptionBudget": map[string]any{"maxUnavailable": "", "minAvailable": 3}},
			[]string{"minAvailable is 3 with 3 replicas", "expected fewer than coordinator.replicas"}},
		{"spread skew 0", map[string]any{"replicas": 3, "state": "kubernetes", "topologySpread": map[string]any{"maxSkew": 0}}, []string{"/coordinator/topologySpread/maxSkew"}},
		{"spread policy", map[string]any{"replicas": 3, "state": "kubernetes", "topologySpread": map[string]any{"whenUnsatisfiable": "Never"}},
			[]string{"/coordinator/topologySpread/whenUnsatisfiable"}},
		{"peer port 0", map[string]any{"state": "kubernetes", "peerPort": 0}, []string{"/coordinator/peerPort"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := simValues(t)
			vals["coordinator"] = tc.coord
			_, err := Template(t.Context(), "cloister", testNS, vals)
			if err == nil {
				t.Fatalf("render with coordinator %v succeeded; want an error naming %q", tc.coord, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("render with coordinator %v: %v\nwant an error containing %q", tc.coord, err, w)
				}
			}
		})
	}
}

// TestLintHighAvailability: Helm's linter accepts the HA values.
func TestLintHighAvailability(t *testing.T) {
	res := lint.RunAll(Name, haValues(t, 3, map[string]any{"podAntiAffinity": "preferred"}), testNS)
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
