package injector

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
)

// FuzzReview feeds arbitrary bodies to the admission decoder. Properties: no panic; a failure is
// errBadReview; a decoded Pod's patch is valid RFC 6902 that applies to it, and the patched pod
// needs no further patch (idempotence on re-admission).
func FuzzReview(f *testing.F) {
	seed, err := os.ReadFile("testdata/review-pod.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a"}]}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"metadata":{"annotations":{"cloister.dev/containers":"a,b"}},"spec":{"containers":[{"name":"a","resources":{"requests":{"sgx.intel.com/epc":"1Ki"}}}]}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"1","kind":{"kind":"Secret"},"operation":"CREATE"}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1"}`))
	f.Add([]byte(`null`))
	h := testHandler(true)
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > MaxReviewSize {
			return
		}
		_, pod, err := decodeReview(body)
		if err != nil {
			if !errors.Is(err, errBadReview) {
				t.Fatalf("decodeReview error %v is not errBadReview", err)
			}
			return
		}
		if pod == nil {
			return
		}
		ops, err := h.mutate(pod, injection{workload: "w", dnsNames: []string{"w"}})
		if err != nil || len(ops) == 0 {
			return
		}
		raw, err := json.Marshal(pod)
		if err != nil {
			return
		}
		pb, err := marshalPatch(ops)
		if err != nil {
			t.Fatalf("marshal patch: %v", err)
		}
		p, err := jsonpatch.DecodePatch(pb)
		if err != nil {
			t.Fatalf("patch is not RFC 6902: %v\n%s", err, pb)
		}
		out, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("patch does not apply to the pod: %v\npod %s\npatch %s", err, raw, pb)
		}
		var got corev1.Pod
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("patched pod does not decode: %v", err)
		}
		if again, err := h.mutate(&got, injection{workload: "w", dnsNames: []string{"w"}}); err != nil || len(again) != 0 {
			t.Fatalf("second admission patched again: %+v, %v\nfirst patch %s", again, err, pb)
		}
	})
}
