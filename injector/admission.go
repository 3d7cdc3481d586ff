package injector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloister-dev/cloister/manifest"
)

// errBadReview marks a request body that is not an AdmissionReview the webhook can answer.
var errBadReview = errors.New("bad admission review")

// decodeReview parses an admission.k8s.io/v1 AdmissionReview of a Pod and the Pod in it. The
// body must be at most [MaxReviewSize] bytes (the caller bounds the reader).
func decodeReview(body []byte) (*admissionv1.AdmissionReview, *corev1.Pod, error) {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, nil, fmt.Errorf("%w: expected an admission.k8s.io/v1 AdmissionReview in JSON: %v", errBadReview, err)
	}
	if r.APIVersion != "admission.k8s.io/v1" || r.Kind != "AdmissionReview" {
		return nil, nil, fmt.Errorf("%w: expected apiVersion admission.k8s.io/v1, kind AdmissionReview; found %q, %q", errBadReview, bound(r.APIVersion), bound(r.Kind))
	}
	if r.Request == nil {
		return nil, nil, fmt.Errorf("%w: the review has no request", errBadReview)
	}
	if r.Request.UID == "" {
		return nil, nil, fmt.Errorf("%w: the request has no uid", errBadReview)
	}
	// Only the review of a Pod needs the object; others are admitted unchanged.
	if r.Request.Kind.Group != "" || r.Request.Kind.Kind != "Pod" || r.Request.Operation != admissionv1.Create {
		return &r, nil, nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(r.Request.Object.Raw, &pod); err != nil {
		return nil, nil, fmt.Errorf("%w: request.object: expected a Pod in JSON: %v", errBadReview, err)
	}
	return &r, &pod, nil
}

// denial is a refusal of a pod, with the message the user sees.
type denial struct{ msg string }

func (d *denial) Error() string { return d.msg }

func deny(format string, args ...any) error { return &denial{fmt.Sprintf(format, args...)} }

// admit decides about one request: a patch (maybe empty) or a denial. Other errors are the
// webhook's own failures; they deny as well.
func (h *handler) admit(ctx context.Context, req *admissionv1.AdmissionRequest, pod *corev1.Pod) ([]patchOp, error) {
	if pod == nil {
		return nil, nil
	}
	name, ok := pod.Labels[Label]
	if !ok {
		// The webhook configuration's objectSelector sends only labelled pods; an unlabelled
		// one is never touched, whatever the configuration says.
		return nil, nil
	}
	if name == "" {
		return nil, deny("label %s is empty; expected the name of a workload in the Cloister manifest", Label)
	}
	m, w, err := h.manifests.lookup(ctx, name)
	switch {
	case errors.Is(err, errUnknownWorkload):
		return nil, deny("label %s=%q names a workload the Cloister manifest lacks; its workloads are: %s",
			Label, bound(name), workloadList(m))
	case err != nil:
		return nil, deny("Cloister cannot admit a pod of workload %q without its Coordinator (denied, not admitted unprotected): %v", bound(name), err)
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	dns, err := h.serviceNames(ctx, ns, pod, m, name, w)
	if err != nil {
		return nil, fmt.Errorf("list the services of namespace %s: %w", ns, err)
	}
	ops, err := h.mutate(pod, injection{workload: name, dnsNames: dns})
	if err != nil {
		return nil, deny("%v", err)
	}
	return ops, nil
}

func workloadList(m *manifest.Manifest) string {
	if m == nil || len(m.Workloads) == 0 {
		return "(none)"
	}
	names := make([]string, 0, len(m.Workloads))
	for n := range m.Workloads {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 20 {
		names = append(names[:20], fmt.Sprintf("… (%d in all)", len(m.Workloads)))
	}
	return strings.Join(names, ", ")
}

// serviceNames returns the DNS names of the Services in ns that select pod, those the manifest
// allows the workload to request (manifest.CheckRequestedDNS, which the Coordinator applies
// to the names the launcher requests), in order, at most manifest.MaxRequestedDNS.
func (h *handler) serviceNames(ctx context.Context, ns string, pod *corev1.Pod, m *manifest.Manifest, workload string, w manifest.Workload) ([]string, error) {
	if len(w.TLS.DNS) == 0 && len(w.TLS.AllowedDNS) == 0 {
		return nil, nil
	}
	services, err := h.services(ctx, ns)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		for _, n := range []string{s.Name, s.Name + "." + ns, s.Name + "." + ns + ".svc", s.Name + "." + ns + ".svc." + h.cfg.ClusterDomain} {
			if len(names) < manifest.MaxRequestedDNS && !slices.Contains(names, n) && m.CheckRequestedDNS(workload, n) == nil {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

// services lists the Services of ns: from the informer's cache once it has synced, from the
// API server before.
func (h *handler) services(ctx context.Context, ns string) ([]*corev1.Service, error) {
	if h.svcSynced != nil && h.svcSynced() {
		return h.svcLister.Services(ns).List(labels.Everything())
	}
	list, err := h.cfg.Kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Service, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// serveHTTP answers POST /mutate.
func (h *handler) serveMutate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := "error"
	defer func() { h.metrics.observe(result, time.Since(start)) }()
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		http.Error(w, fmt.Sprintf("content type %q; expected application/json", bound(ct)), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReviewSize))
	if err != nil {
		http.Error(w, fmt.Sprintf("read the admission review (at most %d bytes): %v", MaxReviewSize, err), http.StatusRequestEntityTooLarge)
		return
	}
	review, pod, err := decodeReview(body)
	if err != nil {
		h.log.Warn("bad admission review", "error", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := review.Request
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	ops, err := h.admit(r.Context(), req, pod)
	log := h.log.With("uid", string(req.UID), "namespace", req.Namespace, "name", podName(req, pod))
	if pod != nil {
		log = log.With("workload", pod.Labels[Label])
	}
	switch d, isDenial := errors.AsType[*denial](err); {
	case isDenial:
		result = "denied"
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: d.msg}
		log.Warn("pod denied", "reason", d.msg)
	case err != nil:
		result = "error"
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError,
			Message: "Cloister injector: internal error (pod denied, not admitted unprotected): " + err.Error()}
		log.Error("admission failed; pod denied", "error", err)
	default:
		patch, err := marshalPatch(ops)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if patch != nil {
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
			result = "mutated"
			log.Info("pod injected", "ops", len(ops))
		} else {
			result = "unchanged"
		}
	}
	out, err := json.Marshal(&admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(out))
}

func podName(req *admissionv1.AdmissionRequest, pod *corev1.Pod) string {
	switch {
	case req.Name != "":
		return req.Name
	case pod != nil && pod.Name != "":
		return pod.Name
	case pod != nil:
		return pod.GenerateName + "*"
	}
	return ""
}
