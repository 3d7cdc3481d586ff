package injector

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Environment variables of the launcher (see package launcher and enclave) the webhook sets.
const (
	envCoordinator = "CLOISTER_COORDINATOR"
	envWorkload    = "CLOISTER_WORKLOAD"
	envInstance    = "CLOISTER_INSTANCE"
	envTEE         = "CLOISTER_TEE"
	envSimDir      = "CLOISTER_SIM_DIR"
	// envDNSNames lists, comma-separated, the pod's Service names the manifest allows in its
	// workload certificate.
	envDNSNames = "CLOISTER_DNS_NAMES"
)

// ours are the variables the webhook owns: a pod's own values for them are replaced.
var ours = []string{envCoordinator, envWorkload, envInstance, envTEE, envSimDir, envDNSNames}

// patchOp is one JSON Patch (RFC 6902) operation. Only "add" is used: on an existing member
// it replaces the value, so every op sets a whole field to what it must be.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// injection is what one pod gets.
type injection struct {
	workload string
	dnsNames []string
}

// mutate returns the patch that turns pod into the injected pod; it is empty when pod is
// injected already. It fails when the containers annotation names a container the pod lacks.
func (h *handler) mutate(pod *corev1.Pod, in injection) ([]patchOp, error) {
	targets, err := targetContainers(pod)
	if err != nil {
		return nil, err
	}
	var ops []patchOp
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if !targets[c.Name] {
			continue
		}
		base := "/spec/containers/" + strconv.Itoa(i)
		if env := h.env(c.Env, in); !equality.Semantic.DeepEqual(env, c.Env) {
			ops = append(ops, patchOp{"add", base + "/env", env})
		}
		if res := h.resources(c.Resources); !equality.Semantic.DeepEqual(res, c.Resources) {
			ops = append(ops, patchOp{"add", base + "/resources", res})
		}
		if h.cfg.Simulation {
			if m := simMount(c.VolumeMounts); !equality.Semantic.DeepEqual(m, c.VolumeMounts) {
				ops = append(ops, patchOp{"add", base + "/volumeMounts", m})
			}
		}
	}
	if t := h.tolerations(pod.Spec.Tolerations); !equality.Semantic.DeepEqual(t, pod.Spec.Tolerations) {
		ops = append(ops, patchOp{"add", "/spec/tolerations", t})
	}
	if h.cfg.Simulation {
		if v := h.simVolume(pod.Spec.Volumes); !equality.Semantic.DeepEqual(v, pod.Spec.Volumes) {
			ops = append(ops, patchOp{"add", "/spec/volumes", v})
		}
	}
	if pod.Annotations[InjectedAnnotation] != in.workload {
		a := make(map[string]string, len(pod.Annotations)+1)
		for k, v := range pod.Annotations {
			a[k] = v
		}
		a[InjectedAnnotation] = in.workload
		ops = append(ops, patchOp{"add", "/metadata/annotations", a})
	}
	return ops, nil
}

// targetContainers returns the names of the containers that run the launcher.
func targetContainers(pod *corev1.Pod) (map[string]bool, error) {
	t := make(map[string]bool, len(pod.Spec.Containers))
	list, ok := pod.Annotations[ContainersAnnotation]
	if !ok {
		for _, c := range pod.Spec.Containers {
			t[c.Name] = true
		}
		return t, nil
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for n := range strings.SplitSeq(list, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("annotation %s=%q names container %q; the pod's containers are %s", ContainersAnnotation, bound(list), bound(n), strings.Join(names, ", "))
		}
		t[n] = true
	}
	return t, nil
}

// env returns the container's environment with the launcher's variables last, in a fixed
// order, replacing any of the pod's own values for them.
func (h *handler) env(old []corev1.EnvVar, in injection) []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, len(old)+len(ours))
	for _, e := range old {
		if !slices.Contains(ours, e.Name) {
			env = append(env, e)
		}
	}
	tee := "gramine"
	if h.cfg.Simulation {
		tee = "simulation"
	}
	env = append(env,
		corev1.EnvVar{Name: envCoordinator, Value: h.cfg.Coordinator},
		corev1.EnvVar{Name: envWorkload, Value: in.workload},
		corev1.EnvVar{Name: envInstance, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.uid"}}},
		corev1.EnvVar{Name: envTEE, Value: tee},
	)
	if h.cfg.Simulation {
		env = append(env, corev1.EnvVar{Name: envSimDir, Value: SimMountPath})
	}
	if len(in.dnsNames) > 0 {
		env = append(env, corev1.EnvVar{Name: envDNSNames, Value: strings.Join(in.dnsNames, ",")})
	}
	return env
}

// resources adds the configured resources to limits and requests, keeping what the container
// asks for already: an extended resource's request must equal its limit, so a container with
// only a request gets that as its limit.
func (h *handler) resources(old corev1.ResourceRequirements) corev1.ResourceRequirements {
	r := *old.DeepCopy()
	for name, q := range h.cfg.Resources {
		if _, ok := r.Limits[name]; ok {
			continue
		}
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		if req, ok := r.Requests[name]; ok {
			r.Limits[name] = req
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Limits[name], r.Requests[name] = q, q
	}
	return r
}

// tolerations adds the configured tolerations the pod lacks.
func (h *handler) tolerations(old []corev1.Toleration) []corev1.Toleration {
	t := slices.Clone(old)
	for _, want := range h.cfg.Tolerations {
		if !slices.ContainsFunc(t, func(have corev1.Toleration) bool { return have.MatchToleration(&want) && have.TolerationSeconds == nil }) {
			t = append(t, want)
		}
	}
	return t
}

// simVolume adds the simulated platform's Secret volume: its keys are the platform's relative
// paths with "/" as "." (see [SimSecretData]).
func (h *handler) simVolume(old []corev1.Volume) []corev1.Volume {
	v := slices.DeleteFunc(slices.Clone(old), func(v corev1.Volume) bool { return v.Name == simVolume })
	items := make([]corev1.KeyToPath, 0, len(h.cfg.SimPlatformFiles))
	for _, p := range h.cfg.SimPlatformFiles {
		items = append(items, corev1.KeyToPath{Key: simKey(p), Path: p})
	}
	mode := int32(0o444)
	return append(v, corev1.Volume{Name: simVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: h.cfg.SimSecretName, Items: items, DefaultMode: &mode,
	}}})
}

func simMount(old []corev1.VolumeMount) []corev1.VolumeMount {
	m := slices.DeleteFunc(slices.Clone(old), func(m corev1.VolumeMount) bool { return m.Name == simVolume })
	return append(m, corev1.VolumeMount{Name: simVolume, MountPath: SimMountPath, ReadOnly: true})
}

// simKey is the Secret key of a platform file.
func simKey(rel string) string { return strings.ReplaceAll(rel, "/", ".") }

// bound cuts s for repeating it in a message.
func bound(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + fmt.Sprintf("… (%d bytes)", len(s))
}

// marshalPatch encodes ops; nil for no ops.
func marshalPatch(ops []patchOp) ([]byte, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	return json.Marshal(ops)
}
