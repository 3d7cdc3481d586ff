package podman

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// coordinator is a Coordinator process started for a test.
type coordinator struct {
	Client, Mesh string // addresses of the client and workload APIs
	platform     *sim.Platform
	root         *x509.Certificate // the pinned deployment root
	log          *logbuf.Buffer
}

// startCoordinator starts `cloister coordinator` on a new simulated
// platform with loopback listeners, waits for its address file, verifies
// it as an outside client would and pins its root. It is stopped with
// SIGINT when the test ends, and must exit cleanly.
func startCoordinator(t *testing.T) *coordinator {
	t.Helper()
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "sim"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The containers read the platform through a bind mount.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addrFile := filepath.Join(dir, "addrs.json")
	c := &coordinator{platform: p, log: &logbuf.Buffer{}}
	cmd := exec.Command(bins.cloister, "coordinator", "--simulation", p.Dir(), "--data-dir", filepath.Join(dir, "data"),
		"--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0", "--addr-file", addrFile, "--log-format", "text")
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the Coordinator did not exit cleanly: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("the Coordinator did not stop within 10s of SIGINT")
		}
		if t.Failed() {
			t.Logf("Coordinator log:\n%s", tail(c.log.String(), 4000))
		}
	})
	waitFor(t, 20*time.Second, "the Coordinator's address file", func() bool {
		b, err := os.ReadFile(addrFile)
		return err == nil && json.Unmarshal(b, c) == nil && c.Client != "" && c.Mesh != ""
	})
	v, err := client.Verify(t.Context(), c.Client, c.expect())
	if err != nil {
		t.Fatalf("verify the Coordinator: %v", err)
	}
	c.root = v.Root
	return c
}

// expect is what the simulated Coordinator must prove.
func (c *coordinator) expect() client.Expect {
	return client.Expect{SGXRoot: c.platform.Root(), MRSigner: &attest.SimCoordinatorSigner, ISVProdID: attest.CoordinatorProdID}
}

// userCert makes a self-signed client certificate for a manifest user.
func userCert(t *testing.T, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// contains reports whether s holds every one of subs.
func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
