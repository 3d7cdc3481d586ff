package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
)

// serve serves the fixture's APIs on loopback until the test ends and returns the client API's
// address.
func (f *fixture) serve(t *testing.T) string {
	t.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	clientLn, meshLn := listen(), listen()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Serve(ctx, clientLn, meshLn, nil, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return clientLn.Addr().String()
}

// heldRequest is a POST whose handler is running and waiting for the body.
type heldRequest struct {
	conn *tls.Conn
	r    *bufio.Reader
	body []byte
}

// holdRequest sends the headers of a POST with the given client certificate and waits until the
// handler asks for the body (Go's server answers "100 Continue" only then): from that moment,
// a server that decided who the caller is when the request started has decided it.
func holdRequest(t *testing.T, addr, path string, cert tls.Certificate, body []byte) *heldRequest {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: coordinator\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", path, len(body))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("waiting for 100 Continue: %q, %v", line, err)
	}
	if _, err := r.ReadString('\n'); err != nil { // the empty line after the interim response
		t.Fatal(err)
	}
	return &heldRequest{conn: conn, r: r, body: body}
}

// finish sends the body and returns the answer.
func (h *heldRequest) finish(t *testing.T) (int, api.ErrorBody) {
	t.Helper()
	if _, err := h.conn.Write(h.body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("status %d with body %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e.Error
}

// post sends one request with a client certificate and returns the status.
func post(t *testing.T, addr, path string, cert tls.Certificate, body []byte) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+addr+path, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Finding: a request whose user's certificate was replaced while its body was still arriving
// must be judged against the manifest in force when it is applied, and refused.
func TestCertificateReplacedDuringRequest(t *testing.T) {
	f := newFixture(t)
	addr := f.serve(t)
	admin1 := testUser("admin")
	if a := f.do(call{method: "POST", path: api.PathManifest, body: testManifest(t)}); a.status != 200 {
		t.Fatalf("set the first manifest: %d %s", a.status, a.err.Message)
	}
	withAdmin := func(u *user, extra func(m map[string]any)) []byte {
		return manifestWith(t, func(m map[string]any) {
			m["users"].(map[string]any)["admin"] = map[string]any{"certificate": u.certPEM, "roles": []string{"admin", "writer"}}
			if extra != nil {
				extra(m)
			}
		})
	}
	admin2 := newUser("admin", 100, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	admin3 := newUser("admin", 101, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	mallory := newUser("mallory", 666, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))

	t.Run("manifest", func(t *testing.T) {
		// The held request would add a user of the attacker's choosing.
		evil := withAdmin(admin1, func(m map[string]any) {
			m["users"].(map[string]any)["mallory"] = map[string]any{"certificate": mallory.certPEM, "roles": []string{"admin"}}
		})
		held := holdRequest(t, addr, api.PathManifest, admin1.tls, evil)
		if code, body := post(t, addr, api.PathManifest, admin1.tls, withAdmin(admin2, nil)); code != 200 {
			t.Fatalf("replace admin's certificate: %d %s", code, body)
		}
		status, e := held.finish(t)
		if status != 401 || e.Code != api.CodeUnauthenticated || !strings.Contains(e.Message, "belongs to no user of the manifest (version 2)") {
			t.Errorf("held manifest update after the certificate was replaced: %d %s %q; want 401 UNAUTHENTICATED", status, e.Code, e.Message)
		}
		raw, version, err := f.c.Manifest()
		if err != nil || version != 2 || strings.Contains(string(raw), "mallory") {
			t.Errorf("manifest after the refused request: version %d (%v), mallory present: %v; want version 2 without mallory",
				version, err, strings.Contains(string(raw), "mallory"))
		}
	})

	t.Run("secrets", func(t *testing.T) {
		held := holdRequest(t, addr, api.PathSecrets, admin2.tls, []byte(`{"secrets":{"upload":"YXR0YWNr"}}`))
		if code, body := post(t, addr, api.PathManifest, admin2.tls, withAdmin(admin3, nil)); code != 200 {
			t.Fatalf("replace admin's certificate: %d %s", code, body)
		}
		status, e := held.finish(t)
		if status != 401 || e.Code != api.CodeUnauthenticated || !strings.Contains(e.Message, "belongs to no user of the manifest (version 3)") {
			t.Errorf("held secret upload after the certificate was replaced: %d %s %q; want 401 UNAUTHENTICATED", status, e.Code, e.Message)
		}
		if _, err := f.c.Secrets(t.Context(), testUser("reader").cert, []string{"upload"}); err == nil || !strings.Contains(err.Error(), "has not been set yet") {
			t.Errorf("reading the secret after the refused upload: %v; want not set", err)
		}
		// The current certificate still works.
		if code, body := post(t, addr, api.PathSecrets, admin3.tls, []byte(`{"secrets":{"upload":"b2s="}}`)); code != 204 {
			t.Errorf("upload with the current certificate: %d %s", code, body)
		}
	})
}

// Finding: user certificates outside their validity period must not authenticate.
func TestUserCertificateValidity(t *testing.T) {
	f := newFixture(t)
	addr := f.serve(t)
	now := time.Now()
	expired := newUser("dave", 200, now.Add(-48*time.Hour), now.Add(-time.Hour))
	future := newUser("erin", 201, now.Add(time.Hour), now.Add(48*time.Hour))
	m := manifestWith(t, func(m map[string]any) {
		users := m["users"].(map[string]any)
		users["dave"] = map[string]any{"certificate": expired.certPEM, "roles": []string{"admin", "writer", "reader"}}
		users["erin"] = map[string]any{"certificate": future.certPEM, "roles": []string{"admin", "writer", "reader"}}
	})
	if a := f.do(call{method: "POST", path: api.PathManifest, body: m}); a.status != 200 {
		t.Fatalf("set the first manifest: %d %s", a.status, a.err.Message)
	}
	for _, tc := range []struct {
		u    *user
		want string
	}{
		{expired, fmt.Sprintf(`user "dave": certificate expired at %s`, expired.cert.NotAfter.UTC().Format(time.RFC3339))},
		{future, fmt.Sprintf(`user "erin": certificate is not valid before %s`, future.cert.NotBefore.UTC().Format(time.RFC3339))},
	} {
		for _, req := range []struct{ path, body string }{
			{api.PathManifest, string(m)},
			{api.PathSecrets, `{"secrets":{"upload":"eA=="}}`},
		} {
			code, body := post(t, addr, req.path, tc.u.tls, []byte(req.body))
			var e api.Error
			_ = json.Unmarshal([]byte(body), &e)
			if code != 401 || e.Error.Code != api.CodeUnauthenticated || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("POST %s as %s: %d %s; want 401 saying %q", req.path, tc.u.cert.Subject.CommonName, code, body, tc.want)
			}
		}
		if _, err := f.c.Secrets(t.Context(), tc.u.cert, []string{"key"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("read secrets as %s: %v; want %q", tc.u.cert.Subject.CommonName, err, tc.want)
		}
	}
	if _, version, _ := f.c.Manifest(); version != 1 {
		t.Errorf("manifest version %d after refused updates, want 1", version)
	}
}
