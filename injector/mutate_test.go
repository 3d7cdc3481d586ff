package injector

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/manifest"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func testHandler(sim bool) *handler {
	cfg := &Config{
		Coordinator: "coord.cloister.svc:2001",
		Simulation:  sim, SimPlatformFiles: []string{"root_ca.pem", "private/pck_key.pem"},
		Resources: corev1.ResourceList{
			"sgx.intel.com/epc": resource.MustParse("10Mi"), "sgx.intel.com/enclave": resource.MustParse("1"),
		},
		Tolerations: []corev1.Toleration{{Key: "sgx.intel.com/epc", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
	}
	cfg.setDefaults()
	return &handler{cfg: cfg}
}

// apply applies ops to pod's JSON and returns the result.
func apply(t testing.TB, pod *corev1.Pod, ops []patchOp) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := marshalPatch(ops)
	if err != nil || pb == nil {
		t.Fatalf("marshalPatch(%d ops) = %s, %v", len(ops), pb, err)
	}
	p, err := jsonpatch.DecodePatch(pb)
	if err != nil {
		t.Fatalf("the patch is not RFC 6902: %v\n%s", err, pb)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply the patch: %v\n%s", err, pb)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func seedPod(t testing.TB) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile("testdata/review-pod.json")
	if err != nil {
		t.Fatal(err)
	}
	_, pod, err := decodeReview(b)
	if err != nil || pod == nil {
		t.Fatalf("decodeReview(seed) = %v, %v", pod, err)
	}
	return pod
}

func TestMutate(t *testing.T) {
	for _, sim := range []bool{false, true} {
		h := testHandler(sim)
		pod := seedPod(t)
		ops, err := h.mutate(pod, injection{workload: "web", dnsNames: []string{"web", "web.apps.svc"}})
		if err != nil {
			t.Fatal(err)
		}
		got := apply(t, pod, ops)

		app, side := got.Spec.Containers[0], got.Spec.Containers[1]
		env := map[string]corev1.EnvVar{}
		for _, e := range app.Env {
			env[e.Name] = e
		}
		wantTEE := map[bool]string{false: "gramine", true: "simulation"}[sim]
		if env["MODE"].Value != "prod" || env[envWorkload].Value != "web" || env[envCoordinator].Value != "coord.cloister.svc:2001" ||
			env[envTEE].Value != wantTEE || env[envDNSNames].Value != "web,web.apps.svc" {
			t.Errorf("sim=%v: env %+v", sim, app.Env)
		}
		if f := env[envInstance].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.uid" {
			t.Errorf("sim=%v: %s = %+v, want the downward API's metadata.uid", sim, envInstance, env[envInstance])
		}
		if _, ok := env[envSimDir]; ok != sim {
			t.Errorf("sim=%v: %s present = %v", sim, envSimDir, ok)
		}
		// The app's own EPC limit is kept; the sidecar's enclave request becomes its limit.
		for _, c := range []struct {
			l        corev1.ResourceList
			name     corev1.ResourceName
			want     string
			where    string
			required bool
		}{
			{app.Resources.Limits, "sgx.intel.com/epc", "4Mi", "app limit", true},
			{app.Resources.Limits, "sgx.intel.com/enclave", "1", "app limit", true},
			{app.Resources.Requests, "sgx.intel.com/enclave", "1", "app request", true},
			{app.Resources.Limits, "memory", "64Mi", "app limit", true},
			{side.Resources.Limits, "sgx.intel.com/epc", "10Mi", "sidecar limit", true},
			{side.Resources.Requests, "sgx.intel.com/epc", "10Mi", "sidecar request", true},
			{side.Resources.Limits, "sgx.intel.com/enclave", "1", "sidecar limit", true},
		} {
			q, ok := c.l[c.name]
			if !ok || q.Cmp(resource.MustParse(c.want)) != 0 {
				t.Errorf("sim=%v: %s %s = %s (present %v), want %s", sim, c.where, c.name, q.String(), ok, c.want)
			}
		}
		if len(got.Spec.Tolerations) != 2 || got.Spec.Tolerations[0].Key != "dedicated" {
			t.Errorf("sim=%v: tolerations %+v, want the pod's own and sgx.intel.com/epc", sim, got.Spec.Tolerations)
		}
		if got.Annotations["team"] != "shop" || got.Annotations[InjectedAnnotation] != "web" {
			t.Errorf("sim=%v: annotations %v", sim, got.Annotations)
		}
		hasVol := slices.ContainsFunc(got.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == simVolume })
		if hasVol != sim {
			t.Errorf("sim=%v: simulated platform volume present = %v", sim, hasVol)
		}

		// Re-admission: nothing more to do.
		again, err := h.mutate(got, injection{workload: "web", dnsNames: []string{"web", "web.apps.svc"}})
		if err != nil || len(again) != 0 {
			t.Errorf("sim=%v: mutate(injected pod) = %+v, %v; want no ops", sim, again, err)
		}
	}
}

func TestMutateContainersAnnotation(t *testing.T) {
	h := testHandler(false)
	pod := seedPod(t)
	pod.Annotations[ContainersAnnotation] = "app"
	ops, err := h.mutate(pod, injection{workload: "web"})
	if err != nil {
		t.Fatal(err)
	}
	got := apply(t, pod, ops)
	if len(got.Spec.Containers[1].Env) != 0 {
		t.Errorf("sidecar not named in %s got env %v", ContainersAnnotation, got.Spec.Containers[1].Env)
	}
	pod.Annotations[ContainersAnnotation] = "app,nosuch"
	_, err = h.mutate(pod, injection{workload: "web"})
	if err == nil || !strings.Contains(err.Error(), `names container "nosuch"; the pod's containers are app, sidecar`) {
		t.Errorf("mutate with an unknown container: %v", err)
	}
}

// TestDNSAllowed checks the filter the injector shares with the Coordinator
// (manifest.CheckRequestedDNS): exact names and one label under a wildcard, of tls.dns or
// tls.allowed_dns, and never a name that is another workload's.
func TestDNSAllowed(t *testing.T) {
	m := &manifest.Manifest{Workloads: map[string]manifest.Workload{
		"web": {TLS: manifest.TLS{DNS: []string{"web"}, AllowedDNS: []string{"*.apps.svc.cluster.local"}}},
		"db":  {TLS: manifest.TLS{DNS: []string{"db.apps.svc.cluster.local"}}},
	}}
	for name, want := range map[string]bool{
		"web": true, "web.apps": false, "web.apps.svc.cluster.local": true, "a.b.apps.svc.cluster.local": false,
		".apps.svc.cluster.local": false, "apps.svc.cluster.local": false,
		"db.apps.svc.cluster.local": false, // covered by web's pattern, but db's name
		"db":                        false,
	} {
		if got := m.CheckRequestedDNS("web", name) == nil; got != want {
			t.Errorf("CheckRequestedDNS(web, %q) allowed = %v, want %v", name, got, want)
		}
	}
}

func TestParseResource(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"sgx.intel.com/epc=10Mi", ""},
		{"kubernetes.azure.com/sgx_epc_mem_in_MiB=10", ""},
		{"sgx.intel.com/epc", "expected NAME=QUANTITY"},
		{"sgx.intel.com/epc=ten", `quantity "ten"`},
		{"sgx.intel.com/epc=0", "expected more than zero"},
		{"bad name!=1", "is not a resource name"},
	} {
		_, _, err := ParseResource(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseResource(%q) = %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestParseToleration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want corev1.Toleration
		err  string
	}{
		{in: "sgx.intel.com/epc:NoSchedule", want: corev1.Toleration{Key: "sgx.intel.com/epc", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		{in: "kubernetes.azure.com/sgx=true:NoExecute", want: corev1.Toleration{Key: "kubernetes.azure.com/sgx", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoExecute}},
		{in: "sgx", err: "expected KEY[=VALUE]:EFFECT"},
		{in: "sgx:Never", err: `effect "Never"`},
		{in: ":NoSchedule", err: "key"},
		{in: "k=bad value:NoSchedule", err: "value"},
	} {
		got, err := ParseToleration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseToleration(%q) = %v, want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseToleration(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
