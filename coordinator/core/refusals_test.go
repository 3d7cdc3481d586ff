package core

import (
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/sgx"
)

// Finding: a render failure was counted against max_activations, so a user who may write one
// secret could lock a singleton workload out for good. No refusal of any kind may be counted.
func TestNoRefusalIsCounted(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["workloads"].(map[string]any)["single"] = map[string]any{
			"package": "signed", "max_activations": 1,
			"env": map[string]string{"V": "{{.Secrets.upload.Raw}}", "I": "{{.Secrets.inst.Hex}}"},
		}
	}))
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("a\x00b")}); err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		name string
		req  func() *request
		code string
	}{
		{"render failure (NUL in an environment value)", func() *request { return newRequest(t, "single", "s1", goodBody()) }, api.CodeManifestInvalid},
		{"invalid instance", func() *request { return newRequest(t, "single", "a/b", goodBody()) }, api.CodeBadRequest},
		{"CSR not DER", func() *request {
			r := newRequest(t, "single", "s1", goodBody())
			r.req.CSR = []byte("x")
			return r
		}, api.CodeBadRequest},
		{"quote not verified", func() *request {
			r := newRequest(t, "single", "s1", goodBody())
			r.req.Quote[len(r.req.Quote)-1] ^= 1
			return r
		}, api.CodeAttestation},
		{"policy", func() *request {
			b := goodBody()
			b.ISVSVN = 1
			return newRequest(t, "single", "s1", b)
		}, api.CodePolicy},
		{"replayed on another connection", func() *request {
			r := newRequest(t, "single", "s1", goodBody())
			r.exporter[0] ^= 1
			return r
		}, api.CodePolicy},
		{"debug enclave", func() *request {
			b := goodBody()
			b.Attributes.Flags |= sgx.AttrDebug
			return newRequest(t, "single", "s1", b)
		}, api.CodePolicy},
	}
	for _, tc := range refusals {
		for range 2 {
			_, err := f.activate(tc.req())
			wantError(t, err, tc.code)
		}
		if n := f.c.ActivationCounts()["single"]; n != 0 {
			t.Fatalf("after %q refusals the count is %d, want 0", tc.name, n)
		}
	}
	f.reopen() // the stored count, not only the one in memory
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("fine")}); err != nil {
		t.Fatal(err)
	}
	if got := f.mustActivate("single", "s1").Env["V"]; got != "fine" {
		t.Errorf("V = %q, want the uploaded value", got)
	}
	_, err := f.activate(newRequest(t, "single", "s2", goodBody()))
	wantError(t, err, api.CodeActivationLimit, `workload "single" reached its maximum of 1 activations`)
	if n := f.c.ActivationCounts()["single"]; n != 1 {
		t.Errorf("count after one activation = %d, want 1", n)
	}
}

// An unlimited workload's statistics count only successes too.
func TestUnlimitedRenderFailureNotCounted(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["workloads"].(map[string]any)["free"] = map[string]any{"package": "signed", "env": map[string]string{"V": "{{.Secrets.upload.Raw}}"}}
	}))
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("a\x00b")}); err != nil {
		t.Fatal(err)
	}
	_, err := f.activate(newRequest(t, "free", "f1", goodBody()))
	wantError(t, err, api.CodeManifestInvalid, "render configuration: ")
	if n := f.c.ActivationCounts()["free"]; n != 0 {
		t.Errorf("count after a render failure = %d, want 0", n)
	}
}
