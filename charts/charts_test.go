package charts

import (
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/cloister-dev/cloister/injector"
	"github.com/cloister-dev/cloister/sgx/sim"
)

const testNS = "confidential"

// objects are the rendered objects of a release, by kind and name.
type objects map[string]*unstructured.Unstructured

func render(t *testing.T, vals map[string]any) (objects, string) {
	t.Helper()
	rel, err := Template(t.Context(), "cloister", testNS, vals)
	if err != nil {
		t.Fatal(err)
	}
	objs := objects{}
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(rel.Manifest), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode the rendered manifest: %v\n%s", err, rel.Manifest)
		}
		if u.Object == nil {
			continue
		}
		objs[u.GetKind()+"/"+u.GetName()] = &u
	}
	return objs, rel.Info.Notes
}

func get[T any](t *testing.T, objs objects, key string) *T {
	t.Helper()
	u, ok := objs[key]
	if !ok {
		t.Fatalf("no %s among the rendered objects %v", key, slices.Sorted(mapsKeys(objs)))
	}
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &v
}

func mapsKeys(m objects) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// simValues are the values `cloister install --simulation` passes, with a platform made here.
func simValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := injector.SimSecretData(newPlatform(t))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]any{}
	for k, v := range data {
		files[k] = base64.StdEncoding.EncodeToString(v)
	}
	return map[string]any{"simulation": true, "simulationPlatform": map[string]any{"files": files}}
}

// testMRSigner is the Coordinator signer the tests outside simulation pin.
const testMRSigner = "8f0b4c7e2a1d3f5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"

// withID returns vals with the injector's Coordinator identity, which the chart requires
// outside simulation.
func withID(vals map[string]any) map[string]any {
	if vals == nil {
		vals = map[string]any{}
	}
	inj, _ := vals["injector"].(map[string]any)
	if inj == nil {
		inj = map[string]any{}
	}
	inj["coordinatorIdentity"] = map[string]any{"mrsigner": testMRSigner, "isvprodid": 1, "minISVSVN": 2}
	vals["injector"] = inj
	return vals
}

func newPlatform(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sim")
	if _, err := sim.Create(dir, sim.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLint runs Helm's linter (what `helm lint` runs, schema included) with the default values,
// in simulation, and with each device plugin: no warning, no error.
func TestLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults":   withID(nil),
		"simulation": simValues(t),
		"azure":      withID(map[string]any{"sgx": map[string]any{"devicePlugin": "azure"}, "collateral": map[string]any{"service": "azure"}}),
		"custom": withID(map[string]any{"sgx": map[string]any{"devicePlugin": "custom", "custom": map[string]any{
			"coordinator": map[string]any{"example.com/sgx": "1"}, "workload": map[string]any{"example.com/sgx": "1"}}}}),
		"cert-manager": withID(map[string]any{"injector": map[string]any{"certManager": map[string]any{"enabled": true}}}),
	} {
		t.Run(name, func(t *testing.T) {
			res := lint.RunAll(Name, vals, testNS)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestDefaults renders the chart with its default values (Intel SGX, not simulation) and
// checks the objects docs/kubernetes.md describes.
func TestDefaults(t *testing.T) {
	objs, notes := render(t, withID(nil))
	want := []string{
		"ClusterRole/cloister-injector-confidential", "ClusterRoleBinding/cloister-injector-confidential",
		"Deployment/cloister", "Deployment/cloister-injector",
		"MutatingWebhookConfiguration/cloister-injector-confidential",
		"PersistentVolumeClaim/cloister-state", "Role/cloister-injector", "RoleBinding/cloister-injector",
		"Service/cloister", "Service/cloister-injector", "ServiceAccount/cloister", "ServiceAccount/cloister-injector",
	}
	if got := slices.Sorted(mapsKeys(objs)); !slices.Equal(got, want) {
		t.Errorf("rendered objects:\n%v\nwant\n%v", got, want)
	}

	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("coordinator: %d replicas, strategy %s; want 1, Recreate", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	for _, a := range []string{"--pccs-url=https://api.trustedservices.intel.com/sgx/certification/v4", "--dns-name=cloister.confidential.svc", "--client-addr=0.0.0.0:4433", "--mesh-addr=0.0.0.0:2001"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("coordinator args %q lack %s", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--simulation") }) {
		t.Errorf("coordinator args %q: simulation without simulation: true", c.Args)
	}
	for name, q := range map[string]string{"sgx.intel.com/epc": "512Mi", "sgx.intel.com/enclave": "1", "sgx.intel.com/provision": "1", "memory": "1Gi"} {
		if got := c.Resources.Limits[corev1.ResourceName(name)]; got.String() != q {
			t.Errorf("coordinator limit %s = %s, want %s", name, got.String(), q)
		}
	}
	checkCoordinatorProbes(t, c)
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("coordinator terminationMessagePolicy %q; want FallbackToLogsOnError (the reason it does not start)", c.TerminationMessagePolicy)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("coordinator security context %+v, pod %+v; want non-root, read-only root", sc, pod.SecurityContext)
	}
	if *pod.AutomountServiceAccountToken {
		t.Error("the Coordinator gets a service-account token; it calls no Kubernetes API")
	}
	if pvc := get[corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim/cloister-state"); pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("state claim annotations %v; want helm.sh/resource-policy keep", pvc.Annotations)
	}
	svc := get[corev1.Service](t, objs, "Service/cloister")
	if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Port != 4433 || svc.Spec.Ports[1].Port != 2001 {
		t.Errorf("coordinator service ports %+v; want 4433 and 2001", svc.Spec.Ports)
	}

	// The webhook: labelled pods only, fail closed, no side effects, v1 reviews, caBundle left
	// to the injector.
	mw := get[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration/cloister-injector-confidential")
	w := mw.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) || len(w.ClientConfig.CABundle) != 0 {
		t.Errorf("webhook %+v; want failurePolicy Fail, sideEffects None, v1 reviews, empty caBundle", w)
	}
	if sel := w.ObjectSelector; sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "cloister.dev/workload" || sel.MatchExpressions[0].Operator != "Exists" {
		t.Errorf("webhook objectSelector %+v; want cloister.dev/workload Exists", w.ObjectSelector)
	}
	if r := w.Rules[0]; !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) || !slices.Equal(r.Resources, []string{"pods"}) {
		t.Errorf("webhook rule %+v; want CREATE pods", r)
	}
	if s := w.ClientConfig.Service; s == nil || s.Name != "cloister-injector" || s.Namespace != testNS {
		t.Errorf("webhook service %+v; want cloister-injector in %s", s, testNS)
	}

	// The injector's command line is the flag contract of `cloister injector`.
	inj := get[appsv1.Deployment](t, objs, "Deployment/cloister-injector").Spec.Template.Spec.Containers[0]
	wantArgs := []string{"injector", "--listen=:8443", "--health-listen=:8081", "--namespace=$(POD_NAMESPACE)",
		"--service=cloister-injector", "--webhook-configuration=cloister-injector-confidential",
		"--cert-secret=cloister-injector-tls", "--coordinator=cloister.confidential.svc:2001",
		"--coordinator-client-api=cloister.confidential.svc:4433",
		"--coordinator-mrsigner=" + testMRSigner, "--coordinator-isvprodid=1", "--coordinator-min-isvsvn=2",
		"--resource=sgx.intel.com/enclave=1", "--resource=sgx.intel.com/epc=256Mi", "--resource=sgx.intel.com/provision=1"}
	if !slices.Equal(inj.Args, wantArgs) || !slices.Equal(inj.Command, []string{"/usr/local/bin/cloister-coordinator"}) {
		t.Errorf("injector command %q args\n%q\nwant\n%q", inj.Command, inj.Args, wantArgs)
	}
	if inj.ReadinessProbe.HTTPGet.Path != "/readyz" || inj.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("injector probes %s, %s; want /readyz, /healthz", inj.ReadinessProbe.HTTPGet.Path, inj.LivenessProbe.HTTPGet.Path)
	}

	// Its RBAC: its own webhook configuration, Services to list, its own Secret.
	cr := get[rbacv1.ClusterRole](t, objs, "ClusterRole/cloister-injector-confidential")
	if len(cr.Rules) != 2 || !slices.Equal(cr.Rules[0].ResourceNames, []string{"cloister-injector-confidential"}) ||
		!slices.Equal(cr.Rules[0].Verbs, []string{"get", "update", "patch"}) || !slices.Equal(cr.Rules[1].Verbs, []string{"list", "watch"}) {
		t.Errorf("injector cluster role %+v", cr.Rules)
	}
	role := get[rbacv1.Role](t, objs, "Role/cloister-injector")
	// delete: OwnerReferencesPermissionEnforcement wants it to make the configuration the
	// Secret's owner.
	if !slices.Equal(role.Rules[0].ResourceNames, []string{"cloister-injector-tls"}) || !slices.Equal(role.Rules[0].Verbs, []string{"get", "update", "delete"}) ||
		!slices.Equal(role.Rules[1].Verbs, []string{"create"}) {
		t.Errorf("injector role %+v", role.Rules)
	}
	if strings.Contains(notes, "SIMULATION") || !strings.Contains(notes, "does not start") {
		t.Errorf("NOTES.txt without simulation:\n%s", notes)
	}
}

// TestWebhookByURL: on a cluster whose API server cannot reach Service IPs (a single node, the
// e2e tests), the webhook is called by URL on the host network, its host is in the serving
// certificate, and the injector and workloads reach the Coordinator at coordinator.address.
func TestWebhookByURL(t *testing.T) {
	vals := simValues(t)
	vals["injector"] = map[string]any{"hostNetwork": true, "port": 18443, "healthPort": 18081, "url": "https://127.0.0.1:18443/mutate", "apiServer": "127.0.0.1:16443"}
	vals["coordinator"] = map[string]any{"address": "127.0.0.1", "clientPort": 14433, "meshPort": 12001}
	objs, _ := render(t, vals)
	w := get[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration/cloister-injector-confidential").Webhooks[0]
	if w.ClientConfig.URL == nil || *w.ClientConfig.URL != "https://127.0.0.1:18443/mutate" || w.ClientConfig.Service != nil {
		t.Errorf("webhook client config %+v; want the URL only", w.ClientConfig)
	}
	pod := get[appsv1.Deployment](t, objs, "Deployment/cloister-injector").Spec.Template.Spec
	for _, a := range []string{"--listen=:18443", "--health-listen=:18081", "--coordinator=127.0.0.1:12001",
		"--coordinator-client-api=127.0.0.1:14433", "--cert-host=127.0.0.1", "--simulation", "--simulation-secret=cloister-simulation"} {
		if !slices.Contains(pod.Containers[0].Args, a) {
			t.Errorf("injector args %q lack %s", pod.Containers[0].Args, a)
		}
	}
	env := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if !pod.HostNetwork || env["CLOISTER_SIM_DIR"] != "/sim" || env["KUBERNETES_SERVICE_HOST"] != "127.0.0.1" || env["KUBERNETES_SERVICE_PORT"] != "16443" {
		t.Errorf("injector pod: hostNetwork %v, env %v; want the host network, CLOISTER_SIM_DIR=/sim and the API server at 127.0.0.1:16443", pod.HostNetwork, env)
	}
}

// TestDevicePlugins: each device plugin's resources reach the Coordinator and the injector.
func TestDevicePlugins(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sgx        map[string]any
		coord      map[string]string
		injectArgs []string
	}{
		{"azure", map[string]any{"devicePlugin": "azure", "coordinatorEPC": "1024Mi"},
			map[string]string{"kubernetes.azure.com/sgx_epc_mem_in_MiB": "1024"},
			[]string{"--resource=kubernetes.azure.com/sgx_epc_mem_in_MiB=256"}},
		{"custom", map[string]any{"devicePlugin": "custom", "custom": map[string]any{"coordinator": map[string]any{"example.com/sgx": "2"}, "workload": map[string]any{"example.com/sgx": "1"}}},
			map[string]string{"example.com/sgx": "2"}, []string{"--resource=example.com/sgx=1"}},
		{"none", map[string]any{"devicePlugin": "none", "workloadTolerations": []any{map[string]any{"key": "sgx", "value": "yes", "effect": "NoSchedule"}}},
			map[string]string{}, []string{"--toleration=sgx=yes:NoSchedule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, _ := render(t, withID(map[string]any{"sgx": tc.sgx}))
			c := get[appsv1.Deployment](t, objs, "Deployment/cloister").Spec.Template.Spec.Containers[0]
			for name := range c.Resources.Limits {
				if name == corev1.ResourceMemory {
					continue
				}
				if _, ok := tc.coord[string(name)]; !ok {
					t.Errorf("coordinator limit %s not expected", name)
				}
			}
			for name, q := range tc.coord {
				if got := c.Resources.Limits[corev1.ResourceName(name)]; got.String() != q {
					t.Errorf("coordinator limit %s = %s, want %s", name, got.String(), q)
				}
			}
			args := get[appsv1.Deployment](t, objs, "Deployment/cloister-injector").Spec.Template.Spec.Containers[0].Args
			var extra []string
			for _, a := range args {
				if strings.HasPrefix(a, "--resource=") || strings.HasPrefix(a, "--toleration=") {
					extra = append(extra, a)
				}
			}
			if !slices.Equal(extra, tc.injectArgs) {
				t.Errorf("injector device-plugin args %q, want %q", extra, tc.injectArgs)
			}
		})
	}
}

// TestSimulation: the platform becomes a Secret mounted at /sim, the Coordinator runs with
// --simulation and no SGX resources, the injector with --simulation, and NOTES.txt shouts.
func TestSimulation(t *testing.T) {
	objs, notes := render(t, simValues(t))
	sec := get[corev1.Secret](t, objs, "Secret/cloister-simulation")
	if len(sec.Data) != len(simulationFiles(t)) {
		t.Errorf("simulation secret has %d files, want %d", len(sec.Data), len(simulationFiles(t)))
	}
	d := get[appsv1.Deployment](t, objs, "Deployment/cloister")
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--simulation=/sim") || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--pccs-url") }) {
		t.Errorf("coordinator args %q; want --simulation=/sim and no --pccs-url", c.Args)
	}
	for name := range c.Resources.Limits {
		if strings.Contains(string(name), "sgx") {
			t.Errorf("simulation requests SGX resource %s", name)
		}
	}
	var items []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "cloister-simulation" {
			for _, it := range v.Secret.Items {
				if _, ok := sec.Data[it.Key]; !ok {
					t.Errorf("volume item %s is not in the secret", it.Key)
				}
				items = append(items, it.Path)
			}
		}
	}
	if want := simulationFiles(t); !slices.Equal(slices.Sorted(slices.Values(items)), want) {
		t.Errorf("/sim holds %v; want the platform's files %v", items, want)
	}
	if d.Spec.Template.Annotations["cloister.dev/simulation"] != "true" {
		t.Errorf("coordinator pod annotations %v; want cloister.dev/simulation true", d.Spec.Template.Annotations)
	}
	injPod := get[appsv1.Deployment](t, objs, "Deployment/cloister-injector").Spec.Template.Spec
	inj := injPod.Containers[0]
	if !slices.Contains(inj.Args, "--simulation") || slices.ContainsFunc(inj.Args, func(a string) bool { return strings.HasPrefix(a, "--resource") }) {
		t.Errorf("injector args %q; want --simulation and no SGX resources", inj.Args)
	}
	// The injector verifies the simulated Coordinator with the same platform, and tells pods
	// to mount the chart's Secret.
	if !slices.Contains(inj.Args, "--simulation-secret=cloister-simulation") {
		t.Errorf("injector args %q; want --simulation-secret=cloister-simulation", inj.Args)
	}
	var injItems []string
	for _, v := range injPod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "cloister-simulation" {
			for _, it := range v.Secret.Items {
				injItems = append(injItems, it.Path)
			}
		}
	}
	if want := simulationFiles(t); !slices.Equal(slices.Sorted(slices.Values(injItems)), want) {
		t.Errorf("the injector's /sim holds %v; want the platform's files %v", injItems, want)
	}
	if !strings.Contains(notes, "SIMULATION MODE: NOTHING IS PROTECTED") {
		t.Errorf("NOTES.txt in simulation does not say so:\n%s", notes)
	}
}

// simulationFiles lists what `cloister sim init` writes, relative to its directory.
func simulationFiles(t *testing.T) []string {
	t.Helper()
	dir := newPlatform(t)
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestSchemaRejects: values.schema.json (through Helm, as `helm install` checks it) refuses bad
// values with a message naming the value; a simulation without a platform fails with a hint.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"two replicas, embedded state", map[string]any{"coordinator": map[string]any{"replicas": 2}}, "at '/coordinator/replicas': maximum: got 2, want 1"},
		{"unknown device plugin", map[string]any{"sgx": map[string]any{"devicePlugin": "amd"}}, "devicePlugin"},
		{"EPC not in Mi", map[string]any{"sgx": map[string]any{"workloadEPC": "1G"}}, "workloadEPC"},
		{"unknown key", map[string]any{"coordinater": map[string]any{}}, "coordinater"},
		{"unknown nested key", map[string]any{"injector": map[string]any{"enable": true}}, "enable"},
		{"port 0", map[string]any{"coordinator": map[string]any{"clientPort": 0}}, "clientPort"},
		{"simulation not a boolean", map[string]any{"simulation": "yes"}, "simulation"},
		{"pccs without URL", map[string]any{"collateral": map[string]any{"service": "pccs"}}, "pccsURL"},
		{"plain http PCCS", map[string]any{"collateral": map[string]any{"service": "pccs", "pccsURL": "http://pccs:8081/sgx/certification/v4"}}, "pccsURL"},
		{"toleration without effect", map[string]any{"sgx": map[string]any{"workloadTolerations": []any{map[string]any{"key": "sgx"}}}}, "effect"},
		{"simulation without platform", map[string]any{"simulation": true}, "no simulated platform"},
		{"no Coordinator identity", nil, "injector.coordinatorIdentity is empty"},
		{"MRSIGNER not hex", map[string]any{"injector": map[string]any{"coordinatorIdentity": map[string]any{"mrsigner": "xyz"}}}, "mrsigner"},
		{"webhook URL not https", map[string]any{"injector": map[string]any{"url": "http://127.0.0.1:8443/mutate"}}, "url"},
		{"readiness timeout under the state read", map[string]any{"coordinator": map[string]any{"probes": map[string]any{"readiness": map[string]any{"timeoutSeconds": 1}}}},
			"at '/coordinator/probes/readiness/timeoutSeconds': minimum: got 1, want 6"},
		{"listen address in brackets", map[string]any{"coordinator": map[string]any{"listenAddress": "[::]"}}, "/coordinator/listenAddress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Template(t.Context(), "cloister", testNS, tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render with %v: %v; want an error naming %q", tc.vals, err, tc.want)
			}
		})
	}
}

// TestEmbedded: the embedded chart is the directory's, file for file.
func TestEmbedded(t *testing.T) {
	err := filepath.WalkDir(Name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(Name, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := fs.ReadFile(FS(), filepath.ToSlash(rel))
		if err != nil || string(got) != string(want) {
			t.Errorf("embedded %s differs from the file (%v)", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkCoordinatorProbes: started and alive are a TCP connect to the client API (no request,
// which would read the shared state and fail on every replica while the API server is down);
// ready is the workload API's shared quote (refused in recovery mode), with a timeout above
// the 5 s a request may spend reading the state.
func checkCoordinatorProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.TCPSocket == nil || p.HTTPGet != nil || p.TCPSocket.Port.String() != "client-api" {
			t.Errorf("coordinator %s probe %+v; want a TCP connect to client-api", name, p)
		}
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/api/v1/quote/epoch" || p.HTTPGet.Scheme != corev1.URISchemeHTTPS ||
		p.HTTPGet.Port.String() != "workload-api" || p.TimeoutSeconds != 6 || p.PeriodSeconds != 10 || p.FailureThreshold != 3 {
		t.Errorf("coordinator readiness probe %+v; want HTTPS GET /api/v1/quote/epoch on workload-api (refused in recovery mode), timeout 6 s, period 10 s, 3 failures", p)
	}
}
