package core

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/pki"
)

func TestSetManifestAuthorization(t *testing.T) {
	f := newFixture(t)
	v1 := testManifest(t, nil)
	if st := f.c.Status(); st.State != api.StateWaitingForManifest || st.ManifestVersion != 0 {
		t.Fatalf("a new Coordinator's status: %+v", st)
	}
	// Trust on first use: anyone sets the first manifest.
	r := f.setManifest("", v1)
	if want := (api.SetManifestResponse{Version: 1, Digest: fmt.Sprintf("%x", sha256.Sum256(v1))}); r.Version != want.Version || r.Digest != want.Digest || r.RecoveryShares != nil {
		t.Errorf("first SetManifest = %+v, want %+v", *r, want)
	}
	if !strings.Contains(f.logs.String(), "first manifest set (trust on first use)") {
		t.Errorf("the first manifest was not logged as trust on first use")
	}
	v2 := testManifest(t, func(m map[string]any) { m["settings"] = map[string]any{"trust_domain": "v2.test"} })
	for _, tc := range []struct {
		name, user string
		raw        []byte
		code, want string
	}{
		{"anonymous", "", v2, api.CodeUnauthenticated, "a manifest is already set; updating it needs a client certificate of a user with the manifest update role"},
		{"user without the role", "reader", v2, api.CodeForbidden, `user "reader" has no role that grants update on the manifest`},
		{"user with no roles", "nobody", v2, api.CodeForbidden, `user "nobody" has no role that grants update on the manifest`},
		{"not a user of the manifest", "stranger", v2, api.CodeUnauthenticated, `client certificate "stranger" (serial 4) belongs to no user of the manifest (version 1)`},
		{"invalid manifest", "admin", []byte(`{"workloads":{"w":{"package":"nope"}}}`), api.CodeManifestInvalid, `manifest rejected: $.workloads.w.package: unknown package "nope"`},
		{"not JSON", "admin", []byte(`{`), api.CodeManifestInvalid, "manifest rejected: $: expected more JSON, found the end of the document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.SetManifest(t.Context(), as(t, tc.user), tc.raw)
			wantError(t, err, tc.code, tc.want)
			raw, version, err := f.c.Manifest()
			if err != nil || version != 1 || string(raw) != string(v1) {
				t.Errorf("after a refused update the manifest is version %d (%v); want version 1 unchanged", version, err)
			}
		})
	}
	_, inter1 := f.c.Certificates()
	r = f.setManifest("admin", v2)
	if r.Version != 2 {
		t.Errorf("update gave version %d, want 2", r.Version)
	}
	root, inter2 := f.c.Certificates()
	if inter2 == inter1 {
		t.Errorf("manifest version 2 kept the intermediate CA of version 1")
	}
	certs, err := pki.ParseCertsPEM([]byte(inter2 + root))
	if err != nil || len(certs) != 2 || certs[0].CheckSignatureFrom(certs[1]) != nil {
		t.Errorf("the new intermediate is not issued by the unchanged root (%v)", err)
	}
	if st := f.c.Status(); st.State != api.StateRunning || st.ManifestVersion != 2 || st.ManifestDigest != r.Digest {
		t.Errorf("status after the update: %+v", st)
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	if name, err := f.c.Authenticate(nil); name != "" || err != nil {
		t.Errorf("Authenticate(nil) = %q, %v; want the anonymous caller", name, err)
	}
	// Before the first manifest there are no users: a certificate makes nobody anybody.
	if name, err := f.c.Authenticate(user(t, "admin").cert); name != "" || err != nil {
		t.Errorf("Authenticate(a certificate) before the first manifest = %q, %v; want the anonymous caller", name, err)
	}
	f.setManifest("", testManifest(t, nil))
	if name, err := f.c.Authenticate(user(t, "admin").cert); name != "admin" || err != nil {
		t.Errorf("Authenticate(admin's certificate) = %q, %v", name, err)
	}
	_, err := f.c.Authenticate(user(t, "stranger").cert)
	wantError(t, err, api.CodeUnauthenticated, `client certificate "stranger"`, "belongs to no user of the manifest")
}

// readAll reads the named secrets as the reader.
func (f *fixture) readAll(names ...string) map[string]api.Secret {
	f.t.Helper()
	s, err := f.c.Secrets(f.t.Context(), as(f.t, "reader"), names)
	if err != nil {
		f.t.Fatalf("Secrets(%v): %v", names, err)
	}
	return s
}

func TestSetManifestCarriesSecrets(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("v1-upload")}); err != nil {
		t.Fatal(err)
	}
	v1 := f.readAll("shared", "other", "cert", "upload")

	// Version 2: "other" gets a new definition, "shared", "cert" and "upload" keep theirs.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["other"] = map[string]any{"type": "symmetric-key", "size": 256}
	}))
	v2 := f.readAll("shared", "other", "cert", "upload")
	if string(v2["shared"].Value) != string(v1["shared"].Value) || !sameCert(v2["cert"], v1["cert"]) || string(v2["upload"].Value) != "v1-upload" {
		t.Errorf("unchanged secret definitions did not keep their values across a manifest update")
	}
	if len(v2["other"].Value) != 32 || string(v2["other"].Value) == string(v1["other"].Value) {
		t.Errorf("a changed definition (128 -> 256 bits) kept its old value or got %d bytes", len(v2["other"].Value))
	}

	// Version 3: the user-defined secret's definition changes, so its value is dropped, and
	// "other" is removed from the manifest.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		s := m["secrets"].(map[string]any)
		s["upload"] = map[string]any{"type": "user-defined", "max_size": 32}
		delete(s, "other")
		r := m["roles"].(map[string]any)
		r["reader"] = map[string]any{"resource": "secrets", "names": []string{"shared", "inst", "cert", "upload", "plain"}, "actions": []string{"read"}}
	}))
	_, err := f.c.Secrets(t.Context(), as(t, "reader"), []string{"upload"})
	wantError(t, err, api.CodeNotFound, `user-defined secret "upload" has not been set yet`)
	_, err = f.activate(newRequest(t, "needs-upload", "u1", goodBody()))
	wantError(t, err, api.CodeNotReady, `secret "upload" has not been set yet`)
	_, err = f.c.Secrets(t.Context(), as(t, "reader"), []string{"other"})
	wantError(t, err, api.CodeNotFound, `secret "other" is not defined`)

	// All of it survives a restart, and the removed secret is gone from the store.
	f.reopen()
	v3 := f.readAll("shared", "cert")
	if string(v3["shared"].Value) != string(v1["shared"].Value) || !sameCert(v3["cert"], v1["cert"]) {
		t.Errorf("secret values changed across a restart")
	}
	if raw, version, err := f.c.Manifest(); err != nil || version != 3 || !strings.Contains(string(raw), `"max_size":32`) {
		t.Errorf("after a restart the manifest is version %d (%v)", version, err)
	}
	if _, ok := f.c.current().secrets["other"]; ok {
		t.Errorf("the secret removed in version 3 is still stored")
	}
}

func TestSecretsAuthorization(t *testing.T) {
	f := newFixture(t)
	_, err := f.c.Secrets(t.Context(), as(t, "reader"), []string{"shared"})
	wantError(t, err, api.CodeNotReady, "no manifest has been set yet")
	f.setManifest("", testManifest(t, nil))
	for _, tc := range []struct {
		name  string
		user  string
		names []string
		code  string
		want  string
	}{
		{"anonymous", "", []string{"shared"}, api.CodeUnauthenticated, "reading secrets needs a client certificate of a manifest user"},
		{"no names", "reader", nil, api.CodeBadRequest, "name the secrets to read (name=…)"},
		{"undefined", "reader", []string{"nope"}, api.CodeNotFound, `secret "nope" is not defined; defined secrets: [cert fk inst other plain shared upload]`},
		{"no read role", "admin", []string{"shared"}, api.CodeForbidden, `user "admin" has no role that grants read on secret "shared"`},
		{"not covered by the role", "reader", []string{"shared", "fk"}, api.CodeForbidden, `user "reader" has no role that grants read on secret "fk"`},
		{"per instance", "reader", []string{"inst"}, api.CodeBadRequest, `secret "inst" is per instance; only workload instances receive it`},
		{"user-defined not set", "reader", []string{"upload"}, api.CodeNotFound, `user-defined secret "upload" has not been set yet`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := f.c.Secrets(t.Context(), as(t, tc.user), tc.names)
			if s != nil {
				t.Errorf("a refused read returned values")
			}
			wantError(t, err, tc.code, tc.want)
		})
	}
	got := f.readAll("shared", "cert", "plain")
	if len(got["shared"].Value) != 16 || string(got["plain"].Value) != "plain-value" {
		t.Errorf("secret values: shared %d bytes, plain %q", len(got["shared"].Value), got["plain"].Value)
	}
	if c := got["cert"]; c.Value != nil || !strings.Contains(c.Certificate, "BEGIN CERTIFICATE") || !strings.Contains(c.PrivateKey, "BEGIN PRIVATE KEY") {
		t.Errorf("a certificate secret reads as %+v", c)
	}
}

func TestSetSecrets(t *testing.T) {
	f := newFixture(t)
	err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("x")})
	wantError(t, err, api.CodeNotReady, "no manifest has been set yet")
	f.setManifest("", testManifest(t, nil))
	for _, tc := range []struct {
		name   string
		user   string
		values map[string][]byte
		code   string
		want   string
	}{
		{"anonymous", "", map[string][]byte{"upload": []byte("x")}, api.CodeUnauthenticated, "setting secrets needs a client certificate of a manifest user"},
		{"nothing", "admin", nil, api.CodeBadRequest, "no secret values given"},
		{"undefined", "admin", map[string][]byte{"nope": []byte("x")}, api.CodeNotFound, `secret "nope" is not defined`},
		{"generated secret", "admin", map[string][]byte{"shared": []byte("x")}, api.CodeBadRequest, `secret "shared" is of type symmetric-key; only user-defined secrets can be set`},
		{"plain secret", "admin", map[string][]byte{"plain": []byte("x")}, api.CodeBadRequest, `secret "plain" is of type plain; only user-defined secrets can be set`},
		{"no write role", "reader", map[string][]byte{"upload": []byte("x")}, api.CodeForbidden, `user "reader" has no role that grants write on secret "upload"`},
		{"empty value", "admin", map[string][]byte{"upload": {}}, api.CodeBadRequest, `secret "upload": value of 0 bytes; expected 1 to 16 bytes`},
		{"over max_size", "admin", map[string][]byte{"upload": make([]byte, 17)}, api.CodeBadRequest, `secret "upload": value of 17 bytes; expected 1 to 16 bytes`},
		// All or nothing: a valid value next to a refused one is not set either.
		{"one of two refused", "admin", map[string][]byte{"fk": []byte("valid"), "upload": make([]byte, 17)}, api.CodeBadRequest, `value of 17 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, f.c.SetSecrets(t.Context(), as(t, tc.user), tc.values), tc.code, tc.want)
			if _, ok := f.c.current().secrets["fk"]; ok {
				t.Errorf("a refused SetSecrets set fk")
			}
			if _, ok := f.c.current().secrets["upload"]; ok {
				t.Errorf("a refused SetSecrets set upload")
			}
		})
	}
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": make([]byte, 16), "fk": []byte("k")}); err != nil {
		t.Fatalf("SetSecrets at max_size: %v", err)
	}
	f.reopen()
	if got := f.readAll("upload")["upload"].Value; len(got) != 16 {
		t.Errorf("after a restart the uploaded value has %d bytes, want 16", len(got))
	}
}

func TestStatePersists(t *testing.T) {
	f := newFixture(t)
	root := f.c.Root()
	key := f.c.TLSCertificate().Leaf.PublicKey
	f.setManifest("", testManifest(t, nil))
	_, inter := f.c.Certificates()
	f.reopen()
	if !f.c.Root().Equal(root) {
		t.Errorf("the root CA changed across a restart")
	}
	if !f.c.TLSCertificate().Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key) {
		t.Errorf("the Coordinator's TLS key changed across a restart")
	}
	if _, got := f.c.Certificates(); got != inter {
		t.Errorf("the intermediate CA changed across a restart")
	}
	if st := f.c.Status(); st.ManifestVersion != 1 || st.State != api.StateRunning {
		t.Errorf("status after restart: %+v", st)
	}
}

func TestSimulationMismatch(t *testing.T) {
	f := newFixture(t) // state created in simulation
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := f.tryOpen(false)
	if err == nil || !strings.Contains(err.Error(), "state was created with simulation=true but the Coordinator runs with simulation=false") {
		t.Errorf("opening simulated state without simulation: %v", err)
	}
}

func TestNewRequiresCollaborators(t *testing.T) {
	_, err := New(t.Context(), Config{})
	for _, w := range []string{"Config.Store is required", "Config.Verifier is required", "Config.Issuer is required"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("New(Config{}) = %v; want it to say %q", err, w)
		}
	}
}

func TestQuoteVerifies(t *testing.T) {
	f := newFixture(t)
	nonce := [32]byte{1, 2, 3}
	resp, err := f.c.Quote(t.Context(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	v, err := client.VerifyQuoteResponse(resp, f.c.TLSCertificate().Leaf, nonce, client.Expect{SGXRoot: platform.Root()})
	if err != nil {
		t.Fatalf("the Coordinator's own quote does not verify: %v", err)
	}
	if !v.Root.Equal(f.c.Root()) || !resp.Simulation {
		t.Errorf("the quote answer names another root or is not marked simulation")
	}
	if _, err := client.VerifyQuoteResponse(resp, f.c.TLSCertificate().Leaf, [32]byte{9}, client.Expect{SGXRoot: platform.Root()}); err == nil || !strings.Contains(err.Error(), "report data") {
		t.Errorf("the quote verified for another nonce: %v", err)
	}
}

func sameCert(a, b api.Secret) bool {
	return a.Certificate != "" && a.Certificate == b.Certificate && a.PrivateKey == b.PrivateKey
}
