package server

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// recoveryServer is a Server in recovery mode on a real core.Recovery whose record is a
// 2-of-2 split of a random key; Complete fails (there is no store behind it).
func recoveryServer(tb testing.TB) *Server {
	tb.Helper()
	key := make([]byte, recovery.KeySize)
	rand.Read(key)
	var holders []recovery.HolderKey
	for _, n := range []string{"h1", "h2"} {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(k.PublicKey())
		holders = append(holders, recovery.HolderKey{Name: n, PublicKey: der})
	}
	rec, _, err := recovery.Split(key, strings.Repeat("ab", 32), holders, 2, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	raw, _ := json.Marshal(rec)
	col, err := verify.LoadCollateral(platform.CollateralDir())
	if err != nil {
		tb.Fatal(err)
	}
	r, err := core.NewRecovery(core.RecoveryConfig{
		Record: raw, Reason: "test: sealed elsewhere", Simulation: true,
		Verifier: attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
		Issuer:   &attest.SimIssuer{Platform: platform, Body: attest.SimEnclaveBody([32]byte{1}, attest.SimCoordinatorSigner, attest.CoordinatorProdID, attest.CoordinatorSVN)},
		Complete: func(context.Context, []byte, core.RecoveryReport) error { return errors.New("no store in this test") },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return NewRecovery(r)
}

func serve(tb testing.TB, h http.Handler, method, path string, body []byte) (int, api.ErrorBody, []byte) {
	tb.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, bytes.NewReader(body)))
	var e api.Error
	if w.Code >= 300 {
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			tb.Fatalf("%s %s: %d with a body that is no API error: %q", method, path, w.Code, w.Body.Bytes())
		}
	}
	return w.Code, e.Error, w.Body.Bytes()
}

// TestRecoveryMode: a Coordinator in recovery mode serves its status and the recovery route,
// and refuses everything else on both APIs with RECOVERY_MODE, naming the reason.
func TestRecoveryMode(t *testing.T) {
	s := recoveryServer(t)
	client, mesh := s.ClientHandler(), s.MeshHandler()
	code, _, body := serve(t, client, "GET", api.PathStatus, nil)
	var st api.Status
	if json.Unmarshal(body, &st); code != 200 || st.State != api.StateRecovery || st.Recovery == nil || st.Recovery.Threshold != 2 {
		t.Fatalf("status: %d %s", code, body)
	}
	for _, c := range []struct {
		h            http.Handler
		method, path string
	}{{client, "GET", api.PathManifest}, {client, "POST", api.PathSecrets}, {client, "GET", api.PathQuote + "?nonce=" + strings.Repeat("0", 64)}, {mesh, "POST", api.PathActivate}, {mesh, "GET", "/anything"}} {
		code, e, _ := serve(t, c.h, c.method, c.path, []byte("{}"))
		if code != http.StatusServiceUnavailable || e.Code != api.CodeRecoveryMode || !strings.Contains(e.Message, "test: sealed elsewhere") {
			t.Errorf("%s %s in recovery mode: %d %+v", c.method, c.path, code, e)
		}
	}
	if code, e, _ := serve(t, client, "GET", api.PathRecovery+"?nonce=zz", nil); code != 400 || e.Code != api.CodeBadRequest {
		t.Errorf("bad nonce: %d %+v", code, e)
	}
	code, _, body = serve(t, client, "GET", api.PathRecovery+"?nonce="+strings.Repeat("ab", 32), nil)
	var ch api.RecoveryChallenge
	if json.Unmarshal(body, &ch); code != 200 || ch.Challenge.Check() != nil || len(ch.Quote) == 0 {
		t.Fatalf("challenge: %d %s", code, body)
	}
}

// FuzzRecoverySubmission sends arbitrary bodies to POST /api/v1/recovery of a Coordinator in
// recovery mode: client input never causes a 5xx, and nothing but a holder's signed share is
// accepted.
func FuzzRecoverySubmission(f *testing.F) {
	s := recoveryServer(f)
	h := s.ClientHandler()
	for _, b := range seedBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"format":"cloister-recovery-submission-v1","session":"00000000000000000000000000000000","deployment":"` + strings.Repeat("ab", 32) +
		`","generation":"00000000000000000000000000000000","holder":"h1","index":1,"encrypted":"AA==","auth":"X25519-HKDF-HMAC-SHA256","signature":"AA=="}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, e, _ := serve(t, h, "POST", api.PathRecovery, body)
		if code == 200 {
			t.Fatalf("a submission nobody signed was accepted: %q", body)
		}
		checkAnswer(t, answer{status: code, err: e}, body)
	})
}
