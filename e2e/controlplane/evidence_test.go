package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/sgx"
)

// csr is a workload key and its certificate request.
type csr struct {
	key  *ecdsa.PrivateKey
	der  []byte
	spki []byte
}

func newCSR(t *testing.T, cn string) csr {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return csr{key: key, der: der, spki: spki}
}

// issuerFunc makes evidence the way a test wants it.
type issuerFunc func(ctx context.Context, reportData [64]byte) ([]byte, error)

func (f issuerFunc) Quote(ctx context.Context, rd [64]byte) ([]byte, error) { return f(ctx, rd) }

// activateWith verifies the Coordinator on a new workload API connection and activates on it
// with evidence from iss.
func activateWith(t *testing.T, mesh string, expect client.Expect, workload, instance string, k csr, iss attest.Issuer) (*api.ActivationResponse, error) {
	t.Helper()
	s, err := client.DialMesh(t.Context(), mesh, expect)
	if err != nil {
		t.Fatalf("DialMesh: %v", err)
	}
	defer s.Close()
	if !s.Verified.IdentityChecked {
		t.Errorf("DialMesh did not check the Coordinator's identity")
	}
	return s.Activate(t.Context(), workload, instance, k.der, iss)
}

// wantRefusal requires err to be the Coordinator's refusal with code and status, whose message
// holds every substring of want.
func wantRefusal(t *testing.T, err error, status int, code string, want ...string) {
	t.Helper()
	ae, ok := errors.AsType[*client.APIError](err)
	if !ok {
		t.Fatalf("activation: %v; want a refusal %d %s", err, status, code)
	}
	if ae.StatusCode != status || ae.Code != code {
		t.Errorf("activation refused with %d %s (%s); want %d %s", ae.StatusCode, ae.Code, ae.Message, status, code)
	}
	for _, w := range want {
		if !strings.Contains(ae.Message, w) {
			t.Errorf("refusal %q does not say %q", ae.Message, w)
		}
	}
}

func (d *deployment) refusedHandMadeEvidence(t *testing.T) {
	mesh, expect := d.co.Addrs.Mesh, d.co.Expect()
	signerID := enclave.MRSigner(&signer.PublicKey)
	body := attest.SimEnclaveBody(sha256.Sum256([]byte("a hand-made enclave")), signerID, 7, 3)
	debugBody := body
	debugBody.Attributes.Flags |= sgx.AttrDebug
	honest := &attest.SimIssuer{Platform: d.p, Body: body}

	t.Run("control: the hand-made evidence is accepted", func(t *testing.T) {
		k := newCSR(t, "dial")
		resp, err := activateWith(t, mesh, expect, "dial", "h1", k, honest)
		if err != nil {
			t.Fatalf("activation with honest evidence: %v", err)
		}
		if resp.Env["TOKEN"] != d.secrets["shared (hex)"] || !resp.Simulation || resp.ManifestVersion != 1 {
			t.Errorf("activation answer: TOKEN matches %v, simulation %v, manifest version %d",
				resp.Env["TOKEN"] == d.secrets["shared (hex)"], resp.Simulation, resp.ManifestVersion)
		}
		leaf := parseCert(t, "workload certificate", resp.CertificateChain[:strings.Index(resp.CertificateChain, "-----END CERTIFICATE-----")+25])
		if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&k.key.PublicKey) {
			t.Errorf("the workload certificate is not for the CSR's key")
		}
	})
	d.expectActivation("dial", "ok", 1)

	t.Run("debug enclave not allowed", func(t *testing.T) {
		_, err := activateWith(t, mesh, expect, "dial", "h2", newCSR(t, "dial"), &attest.SimIssuer{Platform: d.p, Body: debugBody})
		wantRefusal(t, err, http.StatusForbidden, api.CodePolicy, `workload "dial" (package "signed")`,
			"debug enclave (ATTRIBUTES.DEBUG set) not accepted; expected a production enclave")
	})
	d.expectActivation("dial", "POLICY_REJECTED", 1)
	t.Run("control: debug enclave where the package allows it", func(t *testing.T) {
		if _, err := activateWith(t, mesh, expect, "debug-ok", "h3", newCSR(t, "debug-ok"), &attest.SimIssuer{Platform: d.p, Body: debugBody}); err != nil {
			t.Fatalf("activation of a debug enclave with debug: true: %v", err)
		}
	})
	d.expectActivation("debug-ok", "ok", 1)

	t.Run("stolen quote binds another key", func(t *testing.T) {
		other := newCSR(t, "someone else")
		thief := issuerFunc(func(ctx context.Context, rd [64]byte) ([]byte, error) {
			// The right connection, but the key of another CSR: a quote taken from
			// whoever owns that key.
			stolen := attest.ActivationReportData(other.spki, [32]byte(rd[32:]))
			return honest.Quote(ctx, stolen)
		})
		_, err := activateWith(t, mesh, expect, "dial", "h4", newCSR(t, "dial"), thief)
		wantRefusal(t, err, http.StatusForbidden, api.CodePolicy, "report data", "not accepted", "was it replayed or stolen?")
	})
	d.expectActivation("dial", "POLICY_REJECTED", 1)

	t.Run("quote replayed on another connection", func(t *testing.T) {
		k := newCSR(t, "dial")
		var captured []byte
		recording := issuerFunc(func(ctx context.Context, rd [64]byte) ([]byte, error) {
			q, err := honest.Quote(ctx, rd)
			captured = q
			return q, err
		})
		if _, err := activateWith(t, mesh, expect, "dial", "h5", k, recording); err != nil {
			t.Fatalf("the original activation: %v", err)
		}
		replay := issuerFunc(func(context.Context, [64]byte) ([]byte, error) { return captured, nil })
		_, err := activateWith(t, mesh, expect, "dial", "h5", k, replay)
		wantRefusal(t, err, http.StatusForbidden, api.CodePolicy, "report data", "not accepted", "was it replayed or stolen?")
	})
	d.expectActivation("dial", "ok", 1)
	d.expectActivation("dial", "POLICY_REJECTED", 1)

	t.Run("not a quote", func(t *testing.T) {
		junk := issuerFunc(func(context.Context, [64]byte) ([]byte, error) { return []byte("not a quote"), nil })
		_, err := activateWith(t, mesh, expect, "dial", "h6", newCSR(t, "dial"), junk)
		wantRefusal(t, err, http.StatusUnauthorized, api.CodeAttestation, "quote not verified")
	})
	d.expectActivation("dial", "ATTESTATION_FAILED", 1)

	t.Run("quote from another simulated platform", func(t *testing.T) {
		other := d.e.NewPlatform(t, "platform-elsewhere")
		_, err := activateWith(t, mesh, expect, "dial", "h7", newCSR(t, "dial"), &attest.SimIssuer{Platform: other, Body: body})
		wantRefusal(t, err, http.StatusUnauthorized, api.CodeAttestation, "quote not verified", "chain does not end in the pinned root key")
	})
	d.expectActivation("dial", "ATTESTATION_FAILED", 1)
}
