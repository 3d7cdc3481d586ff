package server

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/coordinator/core"
)

// governedManifest makes admin and reader updaters with threshold 2, and admin an SVN updater.
func governedManifest(t testing.TB, trustDomain string) []byte {
	return manifestWith(t, func(m map[string]any) {
		m["users"].(map[string]any)["reader"].(map[string]any)["roles"] = []string{"reader", "admin"}
		m["users"].(map[string]any)["admin"].(map[string]any)["roles"] = []string{"admin", "writer", "svn"}
		m["roles"].(map[string]any)["svn"] = map[string]any{"resource": "packages", "names": []string{"signed"}, "actions": []string{"update"}}
		m["governance"] = map[string]any{"update_threshold": 2}
		m["settings"] = map[string]any{"trust_domain": trustDomain}
	})
}

func approvalBody(t testing.TB, name string, p *api.PendingUpdate) []byte {
	t.Helper()
	sig, err := client.SignApproval(testUser(name).tls.PrivateKey.(crypto.Signer), p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(api.ApproveRequest{ID: p.ID, Digest: p.Digest, Signature: sig})
	return b
}

func TestGovernanceAPI(t *testing.T) {
	f := newFixture(t)
	if a := f.do(call{method: "POST", path: api.PathManifest, body: governedManifest(t, "one.test")}); a.status != 200 {
		t.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	next := governedManifest(t, "two.test")
	if a := f.do(call{method: "POST", path: api.PathManifest, body: next, user: "admin"}); a.status != 403 || !strings.Contains(a.err.Message, "needs 2 approvals") {
		t.Errorf("manifest set under threshold 2: %d %+v", a.status, a.err)
	}
	if a := f.do(call{method: "GET", path: api.PathManifestProposal}); a.status != 404 || a.err.Code != api.CodeNotFound {
		t.Errorf("GET proposal with none pending: %d %+v", a.status, a.err)
	}
	if a := f.do(call{method: "POST", path: api.PathManifestProposal, body: next}); a.status != 401 {
		t.Errorf("anonymous proposal: %d %+v", a.status, a.err)
	}
	a := f.do(call{method: "POST", path: api.PathManifestProposal, body: next, user: "admin"})
	if a.status != 200 {
		t.Fatalf("propose: %d %+v", a.status, a.err)
	}
	var proposed api.PendingUpdate
	if err := json.Unmarshal(a.body, &proposed); err != nil || proposed.Proposer != "admin" || proposed.Manifest != nil {
		t.Fatalf("proposal answer %s: %v", a.body, err)
	}
	if a := f.do(call{method: "POST", path: api.PathManifestProposal, body: next, user: "reader"}); a.status != 409 || a.err.Code != api.CodeConflict {
		t.Errorf("second proposal: %d %+v", a.status, a.err)
	}
	// Anyone may read the pending update, with its manifest.
	a = f.do(call{method: "GET", path: api.PathManifestProposal})
	var p api.PendingUpdate
	if err := json.Unmarshal(a.body, &p); err != nil || a.status != 200 || !bytes.Equal(p.Manifest, next) || p.ID != proposed.ID {
		t.Fatalf("GET proposal: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		name, user string
		body       []byte
		status     int
		code       string
	}{
		{"no certificate", "", approvalBody(t, "admin", &p), 401, api.CodeUnauthenticated},
		{"stranger", "stranger", approvalBody(t, "stranger", &p), 401, api.CodeUnauthenticated},
		{"unknown field", "admin", []byte(`{"id":"` + p.ID + `","digest":"` + p.Digest + `","signature":"AA==","extra":1}`), 400, api.CodeBadRequest},
		{"short id", "admin", []byte(`{"id":"ab","digest":"` + p.Digest + `","signature":"AA=="}`), 400, api.CodeBadRequest},
		{"someone else's signature", "reader", approvalBody(t, "admin", &p), 403, api.CodeSignatureInvalid},
		{"too large", "admin", bigBody(maxApprovalBody + 1), 413, api.CodePayloadTooLarge},
	} {
		a := f.do(call{method: "POST", path: api.PathManifestApprove, body: tc.body, user: tc.user})
		if a.status != tc.status || a.err.Code != tc.code {
			t.Errorf("%s: %d %+v; want %d %s", tc.name, a.status, a.err, tc.status, tc.code)
		}
	}
	var r api.ApproveResponse
	a = f.do(call{method: "POST", path: api.PathManifestApprove, body: approvalBody(t, "admin", &p), user: "admin"})
	if err := json.Unmarshal(a.body, &r); err != nil || a.status != 200 || r.Applied || r.Approvals != 1 || r.Threshold != 2 {
		t.Fatalf("first approval: %d %s", a.status, a.body)
	}
	a = f.do(call{method: "POST", path: api.PathManifestApprove, body: approvalBody(t, "reader", &p), user: "reader"})
	if err := json.Unmarshal(a.body, &r); err != nil || a.status != 200 || !r.Applied || r.Version != 2 || r.Digest != p.Digest {
		t.Fatalf("second approval: %d %s", a.status, a.body)
	}
	if a := f.do(call{method: "DELETE", path: api.PathManifestProposal, user: "admin"}); a.status != 404 {
		t.Errorf("DELETE with none pending: %d %+v", a.status, a.err)
	}
	if a := f.do(call{method: "DELETE", path: api.PathManifestProposal + "?id=xyz", user: "admin"}); a.status != 400 {
		t.Errorf("DELETE with a bad id: %d %+v", a.status, a.err)
	}

	// Security-version updates.
	for _, tc := range []struct {
		user, body string
		status     int
		code       string
	}{
		{"reader", `{"package":"signed","svn":4}`, 403, api.CodeForbidden},
		{"admin", `{"package":"signed","svn":2}`, 409, api.CodeConflict},
		{"admin", `{"package":"signed","svn":70000}`, 400, api.CodeBadRequest},
		{"admin", `{"svn":4}`, 400, api.CodeBadRequest},
		{"admin", `{"package":"nope","svn":4}`, 404, api.CodeNotFound},
	} {
		a := f.do(call{method: "POST", path: api.PathManifestSVN, body: []byte(tc.body), user: tc.user})
		if a.status != tc.status || a.err.Code != tc.code {
			t.Errorf("svn %s by %s: %d %+v; want %d %s", tc.body, tc.user, a.status, a.err, tc.status, tc.code)
		}
	}
	a = f.do(call{method: "POST", path: api.PathManifestSVN, body: []byte(`{"package":"signed","svn":4}`), user: "admin"})
	var sr api.SetManifestResponse
	if err := json.Unmarshal(a.body, &sr); err != nil || a.status != 200 || sr.Version != 3 {
		t.Errorf("svn update: %d %s", a.status, a.body)
	}
}

// approvalSeeds are approval bodies the fuzzer starts from (also in testdata/fuzz).
var approvalSeeds = []string{
	`{"id":"0123456789abcdef0123456789abcdef","digest":"` + strings.Repeat("ab", 32) + `","signature":"MEUCIQ=="}`,
	`{"id":"0123456789ABCDEF0123456789ABCDEF","digest":"` + strings.Repeat("ab", 32) + `","signature":"AA=="}`,
	`{"id":"0123456789abcdef0123456789abcdef","digest":"` + strings.Repeat("ab", 32) + `","signature":""}`,
	`{"id":"0123456789abcdef0123456789abcdef","digest":"` + strings.Repeat("ab", 32) + `","signature":"AA==","signature":"AA=="}`,
	`{"id":1,"digest":null,"signature":"!!"}`,
	`{"id":"","digest":"","signature":"AA=="}`,
}

// FuzzApprovalBody: the approval body parser never panics, refuses only with BAD_REQUEST, and
// what it accepts is well formed and survives a round trip.
func FuzzApprovalBody(f *testing.F) {
	for _, s := range append(approvalSeeds, seedBodies...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeApproval(body)
		if err != nil {
			e, ok := errors.AsType[*core.Error](err)
			if !ok || e.Code != api.CodeBadRequest {
				t.Fatalf("decodeApproval(%q) = %v; want a BAD_REQUEST", body, err)
			}
			if len(e.Message) > 4096 {
				t.Fatalf("message of %d bytes", len(e.Message))
			}
			return
		}
		if !isHex(req.ID, 32) || !isHex(req.Digest, 64) || len(req.Signature) == 0 || len(req.Signature) > maxSignature {
			t.Fatalf("accepted a malformed approval: %+v", req)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeApproval(b)
		if err != nil || again.ID != req.ID || again.Digest != req.Digest || !bytes.Equal(again.Signature, req.Signature) {
			t.Fatalf("round trip of %s: %+v, %v", b, again, err)
		}
	})
}
