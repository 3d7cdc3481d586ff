package server

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
)

// clientCodes are the error codes a client's input may cause; INTERNAL is not among them.
var clientCodes = []string{
	api.CodeBadRequest, api.CodePayloadTooLarge, api.CodeUnauthenticated, api.CodeForbidden,
	api.CodeNotFound, api.CodeNotReady, api.CodeManifestInvalid, api.CodeUnknownWorkload,
	api.CodeAttestation, api.CodePolicy, api.CodeActivationLimit, api.CodeConflict, api.CodeSignatureInvalid,
}

// checkAnswer holds for every answer to client input: no 5xx, and every error is an API error
// with a client error code (do checks the body's shape and request ID).
func checkAnswer(t *testing.T, a answer, body []byte) {
	t.Helper()
	if a.status >= 500 {
		t.Fatalf("status %d %s %q for client input %q", a.status, a.err.Code, a.err.Message, bounded(string(body), 200))
	}
	if a.status >= 300 && !slices.Contains(clientCodes, a.err.Code) {
		t.Fatalf("status %d with code %q for client input %q", a.status, a.err.Code, bounded(string(body), 200))
	}
}

// seedBodies are bodies every fuzz target starts from.
var seedBodies = []string{
	``, `{}`, `null`, `[]`, `"x"`, `1`, `{"`, `{} {}`, `{}x`, `{}]`, "{}\n\t ",
	`{"bogus":1}`, `{"WORKLOAD":"web"}`, `{"workload":"web","workload":"limited"}`,
	"\xff\xfe", `{"a":` + strings.Repeat("[", 10000),
}

// FuzzActivationRequest sends arbitrary bodies to POST /api/v1/activate through the real
// handler and a real core: client input never causes a 5xx and never panics.
func FuzzActivationRequest(f *testing.F) {
	fx := newFixture(f)
	if a := fx.do(call{method: "POST", path: api.PathManifest, body: testManifest(f)}); a.status != 200 {
		f.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	valid := fx.activation("web", "seed", goodBody())
	f.Add(valid)
	f.Add(withQuote(f, valid, []byte("junk")))
	f.Add(bytes.Replace(valid, []byte(`"web"`), []byte(`"ghost"`), 1))
	f.Add(bytes.Replace(valid, []byte(`"seed"`), []byte(`"a/b"`), 1))
	f.Add([]byte(`{"workload":"web","instance":"i","quote":"!!","csr":"AAAA"}`))
	f.Add([]byte(`{"workload":"web","instance":"i","quote":null,"csr":null}`))
	f.Add([]byte(`{"workload":5}`))
	for _, s := range seedBodies {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a := fx.doT(t, call{method: "POST", path: api.PathActivate, body: body, mesh: true})
		checkAnswer(t, a, body)
		if a.status == 200 {
			var resp api.ActivationResponse
			if err := json.Unmarshal(a.body, &resp); err != nil || resp.CertificateChain == "" {
				t.Fatalf("a 200 answer that is not an activation: %v", err)
			}
		}
	})
}

// FuzzSetSecretsRequest does the same for POST /api/v1/secrets, as a user with write access.
func FuzzSetSecretsRequest(f *testing.F) {
	fx := newFixture(f)
	if a := fx.do(call{method: "POST", path: api.PathManifest, body: testManifest(f)}); a.status != 200 {
		f.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	for _, s := range append(seedBodies,
		`{"secrets":{"upload":"eA=="}}`, `{"secrets":{"upload":""}}`, `{"secrets":{"key":"eA=="}}`,
		`{"secrets":{"nope":"eA=="}}`, `{"secrets":{"upload":"!!"}}`, `{"secrets":{"upload":5}}`,
		`{"secrets":null}`, `{"secrets":{}}`, `{"secrets":{"upload":"MTIzNDU2Nzg5"}}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a := fx.doT(t, call{method: "POST", path: api.PathSecrets, body: body, user: "admin"})
		checkAnswer(t, a, body)
		if a.status != 204 && a.status < 300 {
			t.Fatalf("status %d, want 204 or an error", a.status)
		}
	})
}

// FuzzSetManifest does the same for POST /api/v1/manifest, as a user with the update role.
func FuzzSetManifest(f *testing.F) {
	fx := newFixture(f)
	m := testManifest(f)
	if a := fx.do(call{method: "POST", path: api.PathManifest, body: m}); a.status != 200 {
		f.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	f.Add(m)
	f.Add(bytes.Replace(m, []byte(`"size":128`), []byte(`"size":250`), 1))
	f.Add(bytes.Replace(m, []byte(`"package":"signed"`), []byte(`"package":"nope"`), 1))
	f.Add(bytes.Replace(m, []byte(`{{.Secrets.key.Hex}}`), []byte(`{{printf "%s" .Secrets.key.Raw}}`), 1))
	for _, s := range seedBodies {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a := fx.doT(t, call{method: "POST", path: api.PathManifest, body: body, user: "admin"})
		checkAnswer(t, a, body)
		if a.status == 200 {
			var r api.SetManifestResponse
			if err := json.Unmarshal(a.body, &r); err != nil || r.Version < 2 {
				t.Fatalf("a 200 answer that is not a new version: %+v, %v", r, err)
			}
		}
	})
}
