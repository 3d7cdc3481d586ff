package injector

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// TestServeMutate checks the HTTP layer: the body bound, bad reviews, and answers that echo the
// request's UID and leave reviews of other objects and unlabelled pods alone.
func TestServeMutate(t *testing.T) {
	h := testHandler(false)
	h.metrics = newMetrics(nil)
	h.log = h.cfg.Log
	unlabelled := `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u-1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"a"}]}}}}`
	for _, tc := range []struct {
		name, body, ctype string
		status            int
		want              string // in the body
	}{
		{"too large", `{"kind":"` + strings.Repeat("x", MaxReviewSize) + `"}`, "application/json", http.StatusRequestEntityTooLarge, "at most 4194304 bytes"},
		{"not JSON", `AdmissionReview`, "application/json", http.StatusBadRequest, "expected an admission.k8s.io/v1 AdmissionReview in JSON"},
		{"v1beta1", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u"}}`, "application/json", http.StatusBadRequest, `found "admission.k8s.io/v1beta1"`},
		{"no request", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`, "application/json", http.StatusBadRequest, "no request"},
		{"not a pod", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u-2","kind":{"kind":"Secret"},"operation":"CREATE","object":{"data":{}}}}`, "application/json", http.StatusOK, `"uid":"u-2","allowed":true`},
		{"pod object is not a pod", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":"x"}}}`, "application/json", http.StatusBadRequest, "request.object: expected a Pod"},
		{"unlabelled pod", unlabelled, "application/json", http.StatusOK, `"uid":"u-1","allowed":true`},
		{"wrong content type", unlabelled, "text/plain", http.StatusUnsupportedMediaType, "expected application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", MutatePath, bytes.NewBufferString(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			rec := httptest.NewRecorder()
			h.serveMutate(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("status %d, body %.300s; want %d and %q", rec.Code, rec.Body.String(), tc.status, tc.want)
			}
			if rec.Code != http.StatusOK {
				return
			}
			var r admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Response == nil || r.Response.Patch != nil || r.APIVersion != "admission.k8s.io/v1" {
				t.Errorf("answer %s (%v); want an allowed v1 review without a patch", rec.Body.String(), err)
			}
		})
	}
}
