package core

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx"
)

func TestActivateRefusals(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	for _, tc := range []struct {
		name     string
		workload string
		instance string
		body     func(b *sgx.ReportBody)
		after    func(t *testing.T, r *request)
		code     string
		want     []string
	}{{
		name: "unknown workload", workload: "ghost",
		code: api.CodeUnknownWorkload, want: []string{`unknown workload "ghost"; the manifest defines [debuggable exact limited needs-filekey needs-upload web]`},
	}, {
		name: "empty instance", instance: "-",
		after: func(t *testing.T, r *request) { r.req.Instance = "" },
		code:  api.CodeBadRequest, want: []string{`instance "": expected 1 to 128 characters of A-Z a-z 0-9 . _ -`},
	}, {
		name: "instance with a slash", instance: "a/b",
		code: api.CodeBadRequest, want: []string{`instance "a/b": expected 1 to 128 characters`},
	}, {
		name: "instance too long", instance: strings.Repeat("i", 129),
		code: api.CodeBadRequest, want: []string{"expected 1 to 128 characters"},
	}, {
		name:  "CSR not DER",
		after: func(t *testing.T, r *request) { r.req.CSR = []byte("not a CSR") },
		code:  api.CodeBadRequest, want: []string{"csr: pki: parsing CSR (DER expected)"},
	}, {
		name:  "no quote",
		after: func(t *testing.T, r *request) { r.req.Quote = nil },
		code:  api.CodeAttestation, want: []string{"quote not verified: "},
	}, {
		name:  "quote with a flipped signature byte",
		after: func(t *testing.T, r *request) { r.req.Quote[len(r.req.Quote)-1] ^= 1 },
		code:  api.CodeAttestation, want: []string{"quote not verified: "},
	}, {
		name: "wrong signer",
		body: func(b *sgx.ReportBody) { b.MRSigner = otherSigner },
		code: api.CodePolicy, want: []string{`workload "web" (package "signed"): `, fmt.Sprintf("mrsigner %x not accepted; expected %x", otherSigner, testSigner)},
	}, {
		name: "wrong product ID",
		body: func(b *sgx.ReportBody) { b.ISVProdID = 8 },
		code: api.CodePolicy, want: []string{"isvprodid 8 not accepted; expected 7"},
	}, {
		name: "ISVSVN below min_isvsvn",
		body: func(b *sgx.ReportBody) { b.ISVSVN = 2 },
		code: api.CodePolicy, want: []string{"isvsvn 2 not accepted; expected at least 3"},
	}, {
		name: "debug enclave", body: func(b *sgx.ReportBody) { b.Attributes.Flags |= sgx.AttrDebug },
		code: api.CodePolicy, want: []string{"debug enclave (ATTRIBUTES.DEBUG set) not accepted"},
	}, {
		name: "wrong MRENCLAVE", workload: "exact",
		body: func(b *sgx.ReportBody) { b.MREnclave[0] ^= 1 },
		code: api.CodePolicy, want: []string{`workload "exact" (package "exact"): mrenclave `, "not accepted; expected one of [" + hex.EncodeToString(testMREnclave[:]) + "]"},
	}, {
		name: "quote binds another key",
		after: func(t *testing.T, r *request) {
			other := newRequest(t, "web", "x", goodBody())
			r.req.Quote = quote(t, goodBody(), attest.ActivationReportData(other.spki, r.exporter))
		},
		code: api.CodePolicy, want: []string{"report data", "was it replayed or stolen?"},
	}, {
		name:  "quote bound to another connection",
		after: func(t *testing.T, r *request) { r.exporter[31] ^= 1 },
		code:  api.CodePolicy, want: []string{"report data", "was it replayed or stolen?"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.workload == "" {
				tc.workload = "web"
			}
			if tc.instance == "" {
				tc.instance = "i1"
			}
			body := goodBody()
			if tc.body != nil {
				tc.body(&body)
			}
			r := newRequest(t, tc.workload, tc.instance, body)
			if tc.after != nil {
				tc.after(t, r)
			}
			resp, err := f.activate(r)
			if resp != nil {
				t.Errorf("a refused activation returned an answer")
			}
			wantError(t, err, tc.code, tc.want...)
		})
	}
	if counts := f.c.ActivationCounts(); len(counts) != 0 {
		t.Errorf("refused activations were counted: %v", counts)
	}
}

func TestActivateControls(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	f.mustActivate("exact", "e1") // the exact MRENCLAVE
	debug := goodBody()
	debug.Attributes.Flags |= sgx.AttrDebug
	if _, err := f.activate(newRequest(t, "debuggable", "d1", debug)); err != nil {
		t.Errorf("a package with debug: true refused a debug enclave: %v", err)
	}
	higher := goodBody()
	higher.ISVSVN = 9
	if _, err := f.activate(newRequest(t, "web", "w1", higher)); err != nil {
		t.Errorf("an ISVSVN above min_isvsvn was refused: %v", err)
	}
}

func TestActivateBeforeManifest(t *testing.T) {
	f := newFixture(t)
	_, err := f.activate(newRequest(t, "web", "i1", goodBody()))
	wantError(t, err, api.CodeNotReady, "no manifest has been set yet")
}

func TestActivateResponse(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["settings"] = map[string]any{"trust_domain": "unit.test"}
	}))
	r := newRequest(t, "web", "i1", goodBody())
	resp, err := f.activate(r)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Simulation || resp.ManifestVersion != 1 {
		t.Errorf("simulation %v, manifest version %d; want true, 1", resp.Simulation, resp.ManifestVersion)
	}
	chain, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err != nil || len(chain) != 2 {
		t.Fatalf("certificate chain: %d certificates, %v; want leaf and intermediate", len(chain), err)
	}
	leaf, inter := chain[0], chain[1]
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&r.key.PublicKey) {
		t.Errorf("the workload certificate is not for the CSR key")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.c.Root())
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the workload certificate does not chain to the root: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://unit.test/web" {
		t.Errorf("URIs %v, want [spiffe://unit.test/web]", leaf.URIs)
	}
	if !slices.Equal(leaf.DNSNames, []string{"web.test"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("SANs %v %v, want [web.test] [10.0.0.1]", leaf.DNSNames, leaf.IPAddresses)
	}
	if root, _ := f.c.Certificates(); resp.RootCA != root {
		t.Errorf("the answer's root CA is not the deployment root")
	}
	ph := resp.KeyPlaceholder
	if !strings.HasPrefix(ph, "cloister-workload-key-") || len(ph) != len("cloister-workload-key-")+32 {
		t.Errorf("key placeholder %q, want cloister-workload-key-<32 hex digits>", ph)
	}
	if got := string(resp.Files["/etc/web/key.pem"]); got != ph {
		t.Errorf("key.pem = %q, want the placeholder: the Coordinator never has the key", got)
	}
	if got := string(resp.Files["/etc/web/chain.pem"]); got != resp.CertificateChain {
		t.Errorf("chain.pem is not the certificate chain")
	}
	if !slices.Equal(resp.Argv, []string{"/bin/web", "--instance=i1"}) {
		t.Errorf("argv %q", resp.Argv)
	}
	if resp.Env["PLAIN"] != "plain-value" || len(resp.Env["SHARED"]) != 32 || len(resp.Env["INST"]) != 32 {
		t.Errorf("env %v", resp.Env)
	}
	// A second activation gets another placeholder and certificate, the same shared secret.
	resp2 := f.mustActivate("web", "i2")
	if resp2.KeyPlaceholder == ph || resp2.CertificateChain == resp.CertificateChain {
		t.Errorf("two activations share a placeholder or certificate")
	}
	if resp2.Env["SHARED"] != resp.Env["SHARED"] || string(resp2.Files["/etc/web/cert.pem"]) != string(resp.Files["/etc/web/cert.pem"]) {
		t.Errorf("two instances got different shared secrets")
	}
	if !strings.Contains(f.logs.String(), `"msg":"workload activated"`) {
		t.Errorf("the activation was not logged:\n%s", f.logs)
	}
}

func TestPerInstanceSecrets(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	a1 := f.mustActivate("web", "a").Env["INST"]
	b := f.mustActivate("web", "b").Env["INST"]
	a2 := f.mustActivate("web", "a").Env["INST"]
	if a1 == b {
		t.Errorf("instances a and b got the same per-instance secret")
	}
	if a1 != a2 {
		t.Errorf("instance a got %s then %s; want the same per-instance secret", a1, a2)
	}
	// Instance IDs come from the host: another workload claiming the ID "a" must not get a's value.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["workloads"].(map[string]any)["other"] = map[string]any{"package": "signed", "env": map[string]string{"INST": "{{.Secrets.inst.Hex}}"}}
	}))
	if o := f.mustActivate("other", "a").Env["INST"]; o == a1 {
		t.Errorf("workload other, instance a, got workload web's per-instance secret of instance a")
	}
	f.reopen()
	if a3 := f.mustActivate("web", "a").Env["INST"]; a3 != a1 {
		t.Errorf("instance a's per-instance secret changed across a restart")
	}
	// A new definition makes a new value; an unchanged one keeps it.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["inst"] = map[string]any{"type": "symmetric-key", "size": 256, "per_instance": true}
	}))
	if a4 := f.mustActivate("web", "a").Env["INST"]; len(a4) != 64 {
		t.Errorf("after the definition changed to 256 bits, instance a got %d hex digits", len(a4))
	}
}

func TestActivationLimit(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	f.mustActivate("limited", "l1")
	_, err := f.activate(newRequest(t, "limited", "l2", goodBody()))
	wantError(t, err, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`)
	f.reopen()
	_, err = f.activate(newRequest(t, "limited", "l3", goodBody()))
	wantError(t, err, api.CodeActivationLimit, `workload "limited" reached its maximum of 1 activations`)
	if counts := f.c.ActivationCounts(); counts["limited"] != 1 {
		t.Errorf("activation counts %v; want limited: 1", counts)
	}
}

func TestUserDefinedSecretNotReady(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	for range 3 {
		_, err := f.activate(newRequest(t, "needs-upload", "u1", goodBody()))
		wantError(t, err, api.CodeNotReady, `secret "upload" has not been set yet; a user must upload it before workload "needs-upload" can start`)
	}
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("uploaded")}); err != nil {
		t.Fatal(err)
	}
	// max_activations is 1: the refusals did not use it up.
	if got := f.mustActivate("needs-upload", "u1").Env["U"]; got != hex.EncodeToString([]byte("uploaded")) {
		t.Errorf("U = %q, want the hex of the uploaded value", got)
	}
}

// A protected-file key that has not been uploaded yet refuses the activation with NOT_READY,
// which launchers retry. The refusal must not count as an activation, or a workload with
// max_activations would use its activations up while it waits.
func TestFileKeyNotReadyDoesNotCount(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	for range 3 {
		_, err := f.activate(newRequest(t, "needs-filekey", "k1", goodBody()))
		wantError(t, err, api.CodeNotReady, `secret "fk" (a protected-file key of workload "needs-filekey") has not been set yet`)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"fk": key}); err != nil {
		t.Fatal(err)
	}
	resp := f.mustActivate("needs-filekey", "k1")
	if got := resp.FileKeys["fk"]; string(got) != string(key) {
		t.Errorf("file key fk = %x, want the uploaded key", got)
	}
}

func TestActivationMetrics(t *testing.T) {
	f := newFixture(t)
	_, _ = f.activate(newRequest(t, "web", "i1", goodBody())) // no manifest yet
	f.setManifest("", testManifest(t, nil))
	f.mustActivate("web", "i1")
	f.mustActivate("web", "i2")
	bad := goodBody()
	bad.ISVSVN = 1
	_, _ = f.activate(newRequest(t, "web", "i3", bad))
	_, _ = f.activate(newRequest(t, "ghost", "i4", goodBody()))
	for _, tc := range []struct {
		workload, result string
		want             float64
	}{
		{"unknown", api.CodeNotReady, 1},
		{"web", "ok", 2},
		{"web", api.CodePolicy, 1},
		{"unknown", api.CodeUnknownWorkload, 1},
		{"ghost", api.CodeUnknownWorkload, 0}, // unknown names do not become labels
	} {
		if got := f.counter("cloister_activations_total", map[string]string{"workload": tc.workload, "result": tc.result}); got != tc.want {
			t.Errorf("cloister_activations_total{workload=%q,result=%q} = %v, want %v", tc.workload, tc.result, got, tc.want)
		}
	}
	if got := f.counter("cloister_manifest_version", nil); got != 1 {
		t.Errorf("cloister_manifest_version = %v, want 1", got)
	}
	if got := f.counter("cloister_coordinator_state", map[string]string{"state": api.StateRunning}); got != 1 {
		t.Errorf("cloister_coordinator_state{state=running} = %v, want 1", got)
	}
	// Refusals are logged once, by the API at a bounded rate (see the server tests), not by the
	// core: anyone can make them.
	if strings.Contains(f.logs.String(), `refused`) {
		t.Errorf("the core logged a refusal: %s", f.logs.String())
	}
}

// The workload's key never reaches the Coordinator, so neither it nor any secret value may be
// in the Coordinator's log.
func TestActivationLogsNoSecrets(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	resp := f.mustActivate("web", "i1")
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("top-secret-value")}); err != nil {
		t.Fatal(err)
	}
	secrets, err := f.c.Secrets(t.Context(), as(t, "reader"), []string{"shared", "cert", "upload"})
	if err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	keyLines := strings.Split(secrets["cert"].PrivateKey, "\n")
	for name, v := range map[string]string{
		"shared (hex)":        resp.Env["SHARED"],
		"per-instance (hex)":  resp.Env["INST"],
		"user-defined value":  "top-secret-value",
		"certificate key PEM": keyLines[1],
	} {
		if strings.Contains(logs, v) {
			t.Errorf("the log contains the %s", name)
		}
	}
}
