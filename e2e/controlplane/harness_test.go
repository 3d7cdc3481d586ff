package controlplane

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// env is one test's world (see e2etest.Env) with this package's helpers: apps and their
// launches (apps_test.go) and the scan of every log for secrets.
type env struct{ *e2etest.Env }

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{e2etest.New(t)}
}

// coordinatorMeasurement is the simulated MRENCLAVE of the cloister binary under test.
func (e *env) coordinatorMeasurement(t *testing.T) [32]byte {
	t.Helper()
	h := fileSHA256(t, e.Bins.Cloister)
	return enclave.SimMeasurement(enclave.SimCoordinatorTag, h[:])
}

func fileSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// ---- raw API calls ---------------------------------------------------------------------------

// post sends body as it is to an API path, over TLS 1.3 without checking the server (these
// calls test how the Coordinator treats bad input, not whom the client trusts), optionally
// with a user's certificate. It returns the status and the decoded error body, if any.
func post(t *testing.T, addr, path string, body []byte, u *e2etest.User) (int, api.ErrorBody) {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if u != nil {
		cfg.Certificates = []tls.Certificate{u.TLS}
	}
	hc := &http.Client{Timeout: e2etest.RunTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), "POST", "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s (%d bytes): %v", path, len(body), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: read answer: %v", path, err)
	}
	var eb api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("POST %s: status %d with a body that is not an API error: %q", path, resp.StatusCode, b)
		}
		if got := resp.Header.Get(api.RequestIDHeader); got == "" || got != eb.Error.RequestID {
			t.Errorf("POST %s: %s header %q, body request_id %q; want the same non-empty ID", path, api.RequestIDHeader, got, eb.Error.RequestID)
		}
	}
	return resp.StatusCode, eb.Error
}

// ---- secrets in logs -------------------------------------------------------------------------

// needles turns secret values into the strings that must not appear in any log: the value
// itself and, for PEM, every base64 line of its body (a log line might hold a fragment).
func needles(name, value string) map[string]string {
	out := map[string]string{}
	if len(value) >= 8 {
		out[name] = value
	}
	for i, line := range strings.Split(value, "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 24 && !strings.HasPrefix(line, "-----") {
			out[fmt.Sprintf("%s (PEM line %d)", name, i)] = line
		}
	}
	return out
}

// assertNoSecretsInLogs checks every captured line of every process (Coordinator logs,
// launcher output, CLI output except what `cloister secret get` prints on purpose).
func (e *env) assertNoSecretsInLogs(t *testing.T, secrets map[string]string) (lines int) {
	t.Helper()
	all := map[string]string{}
	for name, v := range secrets {
		for n, s := range needles(name, v) {
			all[n] = s
		}
	}
	if len(all) < len(secrets) {
		t.Fatalf("only %d needles for %d secrets: some value is too short to search for", len(all), len(secrets))
	}
	for _, l := range e.Logs() {
		out := l.Out.String()
		lines += strings.Count(out, "\n")
		for name, s := range all {
			if strings.Contains(out, s) {
				t.Errorf("log %q contains %s", l.Name, name)
			}
		}
	}
	return lines
}
