package server

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/coordinator/core"
)

func TestWriteErrorMapping(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{&core.Error{Code: api.CodeBadRequest, Message: "m1"}, 400, api.CodeBadRequest, "m1"},
		{&core.Error{Code: api.CodePayloadTooLarge, Message: "m2"}, 413, api.CodePayloadTooLarge, "m2"},
		{&core.Error{Code: api.CodeUnauthenticated, Message: "m3"}, 401, api.CodeUnauthenticated, "m3"},
		{&core.Error{Code: api.CodeForbidden, Message: "m4"}, 403, api.CodeForbidden, "m4"},
		{&core.Error{Code: api.CodeNotFound, Message: "m5"}, 404, api.CodeNotFound, "m5"},
		{&core.Error{Code: api.CodeNotReady, Message: "m6"}, 503, api.CodeNotReady, "m6"},
		{&core.Error{Code: api.CodeManifestInvalid, Message: "m7"}, 422, api.CodeManifestInvalid, "m7"},
		{&core.Error{Code: api.CodeUnknownWorkload, Message: "m8"}, 404, api.CodeUnknownWorkload, "m8"},
		{&core.Error{Code: api.CodeAttestation, Message: "m9"}, 401, api.CodeAttestation, "m9"},
		{&core.Error{Code: api.CodePolicy, Message: "m10"}, 403, api.CodePolicy, "m10"},
		{&core.Error{Code: api.CodeActivationLimit, Message: "m11"}, 409, api.CodeActivationLimit, "m11"},
		// A wrapped core error keeps its code.
		{fmt.Errorf("context: %w", &core.Error{Code: api.CodeForbidden, Message: "m12"}), 403, api.CodeForbidden, "m12"},
		{&http.MaxBytesError{Limit: 10}, 413, api.CodePayloadTooLarge, "request body is larger than the 10 bytes allowed for POST /x"},
		// Anything else is internal: the client learns the request ID, not the cause.
		{errors.New("disk on fire at /var/lib/secret-path"), 500, api.CodeInternal, "internal error; see the Coordinator log for request req-1"},
	} {
		t.Run(tc.code+"/"+tc.msg, func(t *testing.T) {
			rec := httptest.NewRecorder()
			f.s.writeError(rec, httptest.NewRequest("POST", "/x", nil), "client", "req-1", tc.err)
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			want := api.ErrorBody{Code: tc.code, Message: tc.msg, RequestID: "req-1"}
			if rec.Code != tc.status || e.Error != want {
				t.Errorf("writeError(%v) = %d %+v, want %d %+v", tc.err, rec.Code, e.Error, tc.status, want)
			}
		})
	}
	if logs := f.logs.String(); !strings.Contains(logs, "disk on fire at /var/lib/secret-path") || !strings.Contains(logs, `"request_id":"req-1"`) {
		t.Errorf("the internal error was not logged with its request ID:\n%s", logs)
	}
}

func TestClientAPI(t *testing.T) {
	f := newFixture(t)
	m := testManifest(t)
	steps := []struct {
		name   string
		call   call
		status int
		code   string
		want   string // in the error message, or in the body of a success
	}{
		{"status", call{method: "GET", path: api.PathStatus}, 200, "", `"state":"waiting-for-manifest"`},
		{"unknown route", call{method: "GET", path: "/api/v1/nope"}, 404, api.CodeNotFound, "no route GET /api/v1/nope"},
		{"wrong method", call{method: "DELETE", path: api.PathManifest}, 404, api.CodeNotFound, "no route DELETE /api/v1/manifest"},
		{"quote without nonce", call{method: "GET", path: api.PathQuote}, 400, api.CodeBadRequest, `nonce: expected 64 hex digits (32 bytes), found ""`},
		{"quote with a short nonce", call{method: "GET", path: api.PathQuote + "?nonce=abcd"}, 400, api.CodeBadRequest, `found "abcd"`},
		{"quote with a non-hex nonce", call{method: "GET", path: api.PathQuote + "?nonce=" + strings.Repeat("zz", 32)}, 400, api.CodeBadRequest, "expected 64 hex digits"},
		{"manifest before any", call{method: "GET", path: api.PathManifest}, 503, api.CodeNotReady, "no manifest has been set yet"},
		{"intermediate before any", call{method: "GET", path: api.PathIntermediateCert}, 503, api.CodeNotReady, "no intermediate CA yet"},
		{"chain before any", call{method: "GET", path: api.PathChain}, 503, api.CodeNotReady, "no intermediate CA yet"},
		{"root", call{method: "GET", path: api.PathRootCert}, 200, "", "-----BEGIN CERTIFICATE-----"},
		{"invalid manifest", call{method: "POST", path: api.PathManifest, body: []byte(`{"workloads":{"w":{"package":"p"}}}`)}, 422, api.CodeManifestInvalid, `$.workloads.w.package: unknown package "p"`},
		// Before the first manifest a client certificate is as anonymous as none.
		{"first manifest with a certificate", call{method: "POST", path: api.PathManifest, body: m, user: "stranger"}, 200, "", `"version":1`},
		{"unknown certificate", call{method: "POST", path: api.PathManifest, body: m, user: "stranger"}, 401, api.CodeUnauthenticated, "belongs to no user of the manifest"},
		{"anonymous update", call{method: "POST", path: api.PathManifest, body: m}, 401, api.CodeUnauthenticated, "a manifest is already set"},
		{"update without the role", call{method: "POST", path: api.PathManifest, body: m, user: "reader"}, 403, api.CodeForbidden, `user "reader" has no role that grants update on the manifest`},
		{"update", call{method: "POST", path: api.PathManifest, body: m, user: "admin"}, 200, "", `"version":2`},
		{"secrets anonymous", call{method: "GET", path: api.PathSecrets + "?name=key"}, 401, api.CodeUnauthenticated, "reading secrets needs a client certificate"},
		{"secrets too many names", call{method: "GET", path: api.PathSecrets + "?" + strings.Repeat("name=a&", 101), user: "reader"}, 400, api.CodeBadRequest, "101 secret names; at most 100 per request"},
		{"secrets read", call{method: "GET", path: api.PathSecrets + "?name=key", user: "reader"}, 200, "", `"secrets":{"key":{"value":"`},
		{"secret set without the role", call{method: "POST", path: api.PathSecrets, body: []byte(`{"secrets":{"upload":"eA=="}}`), user: "reader"}, 403, api.CodeForbidden, `user "reader" has no role that grants write on secret "upload"`},
		{"secret set", call{method: "POST", path: api.PathSecrets, body: []byte(`{"secrets":{"upload":"eA=="}}`), user: "admin"}, 204, "", ""},
		{"secret set too large", call{method: "POST", path: api.PathSecrets, body: []byte(`{"secrets":{"upload":"MTIzNDU2Nzg5"}}`), user: "admin"}, 400, api.CodeBadRequest, `secret "upload": value of 9 bytes; expected 1 to 8 bytes`},
		{"chain", call{method: "GET", path: api.PathChain}, 200, "", "-----BEGIN CERTIFICATE-----"},
	}
	for _, st := range steps {
		a := f.do(st.call)
		if a.status != st.status || a.err.Code != st.code {
			t.Errorf("%s: %s %s = %d %s %q; want %d %s", st.name, st.call.method, st.call.path, a.status, a.err.Code, a.err.Message, st.status, st.code)
			continue
		}
		text := a.err.Message
		if st.code == "" {
			text = string(a.body)
		}
		if !strings.Contains(text, st.want) {
			t.Errorf("%s: answer %q does not say %q", st.name, text, st.want)
		}
	}
	a := f.do(call{method: "GET", path: api.PathManifest})
	if a.status != 200 || string(a.body) != string(m) || a.header.Get(api.ManifestVersionHeader) != "2" {
		t.Errorf("GET manifest: %d, %s %q; want the manifest as set, version 2", a.status, api.ManifestVersionHeader, a.header.Get(api.ManifestVersionHeader))
	}
	if got := f.counter("client", "POST "+api.PathManifest, 200); got != 2 {
		t.Errorf("cloister_api_requests_total{api=client,route=POST manifest,code=200} = %v, want 2", got)
	}
	if got := f.counter("client", "/", 404); got != 2 {
		t.Errorf("cloister_api_requests_total for unknown routes = %v, want 2", got)
	}
}

func TestQuoteAnswerVerifies(t *testing.T) {
	f := newFixture(t)
	nonce := [32]byte{7}
	for _, mesh := range []bool{false, true} {
		a := f.do(call{method: "GET", path: api.PathQuote + "?nonce=" + hex.EncodeToString(nonce[:]), mesh: mesh})
		if a.status != 200 {
			t.Fatalf("quote on mesh=%v: %d %s", mesh, a.status, a.err.Message)
		}
		var resp api.QuoteResponse
		if err := json.Unmarshal(a.body, &resp); err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyQuoteResponse(&resp, f.c.TLSCertificate().Leaf, nonce, client.Expect{SGXRoot: platform.Root()}); err != nil {
			t.Errorf("the quote answer (mesh=%v) does not verify: %v", mesh, err)
		}
	}
}

func TestWorkloadAPI(t *testing.T) {
	f := newFixture(t)
	if a := f.do(call{method: "POST", path: api.PathActivate, body: f.activation("web", "i1", goodBody()), mesh: true}); a.status != 503 || a.err.Code != api.CodeNotReady {
		t.Errorf("activation before the manifest: %d %s, want 503 NOT_READY", a.status, a.err.Code)
	}
	if a := f.do(call{method: "POST", path: api.PathManifest, body: testManifest(t)}); a.status != 200 {
		t.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	old := goodBody()
	old.ISVSVN = 1
	for _, tc := range []struct {
		name   string
		call   call
		status int
		code   string
		want   string
	}{
		{"no TLS", call{method: "POST", path: api.PathActivate, body: f.activation("web", "i1", goodBody()), noTLS: true, mesh: true}, 400, api.CodeBadRequest, "activation needs TLS: the quote is bound to the TLS connection"},
		{"client API has no activation", call{method: "POST", path: api.PathActivate, body: f.activation("web", "i1", goodBody())}, 404, api.CodeNotFound, "no route POST /api/v1/activate"},
		{"mesh API has no secrets", call{method: "GET", path: api.PathSecrets, mesh: true}, 404, api.CodeNotFound, "no route GET /api/v1/secrets"},
		// Public, as on the client API: a launcher reads its delivered paths before it activates.
		{"mesh API serves the manifest", call{method: "GET", path: api.PathManifest, mesh: true}, 200, "", `"workloads"`},
		{"unknown workload", call{method: "POST", path: api.PathActivate, body: f.activation("ghost", "i1", goodBody()), mesh: true}, 404, api.CodeUnknownWorkload, `unknown workload "ghost"`},
		{"no CSR", call{method: "POST", path: api.PathActivate, body: []byte(`{"workload":"web","instance":"i1","quote":"AAAA","csr":""}`), mesh: true}, 400, api.CodeBadRequest, "csr: pki: CSR is empty, expected DER"},
		{"null CSR", call{method: "POST", path: api.PathActivate, body: []byte(`{"workload":"web","instance":"i1","quote":"AAAA","csr":null}`), mesh: true}, 400, api.CodeBadRequest, "$.csr: expected a base64 string, found null"},
		{"attestation", call{method: "POST", path: api.PathActivate, body: withQuote(t, f.activation("web", "i1", goodBody()), []byte("junk")), mesh: true}, 401, api.CodeAttestation, "quote not verified: "},
		{"policy", call{method: "POST", path: api.PathActivate, body: f.activation("web", "i1", old), mesh: true}, 403, api.CodePolicy, "isvsvn 1 not accepted; expected at least 3"},
		{"ok", call{method: "POST", path: api.PathActivate, body: f.activation("limited", "i1", goodBody()), mesh: true}, 200, "", `"certificate_chain":"-----BEGIN CERTIFICATE-----`},
		{"limit", call{method: "POST", path: api.PathActivate, body: f.activation("limited", "i2", goodBody()), mesh: true}, 409, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(tc.call)
			text := a.err.Message
			if tc.code == "" {
				text = string(a.body)
			}
			if a.status != tc.status || a.err.Code != tc.code || !strings.Contains(text, tc.want) {
				t.Errorf("POST activate: %d %s %q; want %d %s with %q", a.status, a.err.Code, bounded(text, 200), tc.status, tc.code, tc.want)
			}
		})
	}
}

// TestStrictDecoding sends each body the handlers must refuse, and a body at exactly each
// route's limit, which must get past the size check.
func TestStrictDecoding(t *testing.T) {
	f := newFixture(t)
	if a := f.do(call{method: "POST", path: api.PathManifest, body: testManifest(t)}); a.status != 200 {
		t.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	routes := []struct {
		name  string
		path  string
		mesh  bool
		limit int
	}{
		{"activate", api.PathActivate, true, maxActivationBody},
		{"secrets", api.PathSecrets, false, maxSecretsBody},
	}
	for _, rt := range routes {
		for _, tc := range []struct {
			name   string
			body   []byte
			status int
			code   string
			want   string
		}{
			{"empty", nil, 400, api.CodeBadRequest, "request body: $: expected more JSON, found the end of the document"},
			{"malformed", []byte(`{"workload":`), 400, api.CodeBadRequest, "expected more JSON, found the end of the document"},
			{"syntax error", []byte(`{"workload" "x"}`), 400, api.CodeBadRequest, `invalid JSON at byte 12: invalid character '"' after object key`},
			{"unknown field", []byte(`{"workloadx":"web"}`), 400, api.CodeBadRequest, `request body: $.workloadx: unknown key "workloadx"; expected one of: `},
			{"wrong type", []byte(`[]`), 400, api.CodeBadRequest, "request body: $: expected an object, found an array"},
			{"second object", []byte(`{} {}`), 400, api.CodeBadRequest, "request body: $: expected nothing after the JSON value, found more data at byte 2"},
			{"trailing garbage", []byte(`{}x`), 400, api.CodeBadRequest, "request body: $: expected nothing after the JSON value"},
			{"trailing bracket", []byte(`{}]`), 400, api.CodeBadRequest, "request body: $: expected nothing after the JSON value"},
			// Duplicate keys: encoding/json keeps the last one, so a proxy or auditor reading the
			// first would see another request than the Coordinator acts on.
			{"duplicate key", []byte(`{"workload":"a","workload":"b"}`), 400, api.CodeBadRequest, `$.workload: expected each key once, found "workload" again`},
			{"duplicate nested key", []byte(`{"secrets":{"upload":"AA==","upload":"AQ=="}}`), 400, api.CodeBadRequest, map[bool]string{
				false: `$.secrets.upload: expected each key once, found "upload" again`,
				true:  `$.secrets: unknown key "secrets"`, // the activation body has no nested objects
			}[rt.mesh]},
			{"many problems", []byte(`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1}`), 400, api.CodeBadRequest, "and 3 more problems"},
			{"one byte over the limit", bigBody(rt.limit + 1), 413, api.CodePayloadTooLarge, fmt.Sprintf("request body is larger than the %d bytes allowed for POST %s", rt.limit, rt.path)},
			// At the limit the body is read and decoded: the unknown field is reported.
			{"at the limit", bigBody(rt.limit), 400, api.CodeBadRequest, `$.x: unknown key "x"`},
		} {
			t.Run(rt.name+"/"+tc.name, func(t *testing.T) {
				a := f.do(call{method: "POST", path: rt.path, body: tc.body, mesh: rt.mesh, user: userFor(rt.mesh)})
				if a.status != tc.status || a.err.Code != tc.code || !strings.Contains(a.err.Message, tc.want) {
					t.Errorf("POST %s: %d %s %q; want %d %s with %q", rt.path, a.status, a.err.Code, bounded(a.err.Message, 200), tc.status, tc.code, tc.want)
				}
				if strings.Contains(a.err.Message, "aaaaaaaaaa") {
					t.Errorf("the error echoes the body")
				}
			})
		}
	}
	t.Run("manifest/one byte over the limit", func(t *testing.T) {
		a := f.do(call{method: "POST", path: api.PathManifest, body: bigBody(4<<20 + 1), user: "admin"})
		if a.status != 413 || a.err.Code != api.CodePayloadTooLarge || !strings.Contains(a.err.Message, "larger than the 4194304 bytes allowed") {
			t.Errorf("POST manifest over 4 MiB: %d %s %q", a.status, a.err.Code, a.err.Message)
		}
	})
	if st := f.c.Status(); st.ManifestVersion != 1 {
		t.Errorf("refused bodies changed the manifest version to %d", st.ManifestVersion)
	}
	if got := f.counter("mesh", "POST "+api.PathActivate, 413); got != 1 {
		t.Errorf("413 answers on activate counted %v times, want 1", got)
	}
}

func userFor(mesh bool) string {
	if mesh {
		return ""
	}
	return "admin"
}

// TestInternalErrorHidesCause closes the store under the server: a state change fails, the
// client gets INTERNAL with the request ID only, and the log has the cause.
func TestInternalErrorHidesCause(t *testing.T) {
	f := newFixture(t)
	if a := f.do(call{method: "POST", path: api.PathManifest, body: testManifest(t)}); a.status != 200 {
		t.Fatalf("set manifest: %d %s", a.status, a.err.Message)
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	a := f.do(call{method: "POST", path: api.PathSecrets, body: []byte(`{"secrets":{"upload":"eA=="}}`), user: "admin"})
	if a.status != 500 || a.err.Code != api.CodeInternal || a.err.Message != "internal error; see the Coordinator log for request "+a.err.RequestID {
		t.Fatalf("after the store closed: %d %s %q; want 500 INTERNAL with only the request ID", a.status, a.err.Code, a.err.Message)
	}
	var logged bool
	for line := range strings.Lines(f.logs.String()) {
		logged = logged || strings.Contains(line, `"msg":"request failed"`) && strings.Contains(line, a.err.RequestID) && strings.Contains(line, "store secrets")
	}
	if !logged {
		t.Errorf("the cause was not logged with request ID %s:\n%s", a.err.RequestID, f.logs)
	}
}

// TestServe runs the real servers on loopback: TLS 1.3 only, and a clean return when the
// context ends.
func TestServe(t *testing.T) {
	f := newFixture(t)
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	clientLn, meshLn, metricsLn := listen(), listen(), listen()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })
	go func() { done <- f.s.Serve(ctx, clientLn, meshLn, metrics, metricsLn) }()

	v, err := client.Verify(t.Context(), clientLn.Addr().String(), client.ExpectSimulated(platform.Root()))
	if err != nil {
		t.Fatalf("verify the served Coordinator: %v", err)
	}
	if st, err := client.New(clientLn.Addr().String(), v.Root).Status(t.Context()); err != nil || st.State != api.StateWaitingForManifest {
		t.Errorf("status: %+v, %v", st, err)
	}
	for _, addr := range []string{clientLn.Addr().String(), meshLn.Addr().String()} {
		c, err := tls.Dial("tcp", addr, &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Errorf("%s accepted TLS 1.2; want TLS 1.3 only", addr)
		}
	}
	resp, err := http.Get("http://" + metricsLn.Addr().String() + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("metrics endpoint: %v", err)
	} else {
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s after its context ended")
	}
}

func withQuote(t testing.TB, body, quote []byte) []byte {
	t.Helper()
	var req api.ActivationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	req.Quote = quote
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
