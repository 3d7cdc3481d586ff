package podman

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/pki"
)

// runRedis starts Redis before the manifest exists: the launcher waits, and
// Redis starts only once the Coordinator activated it, with the password and
// TLS certificate it delivered.
func runRedis(t *testing.T, w *world) {
	w.redisPort, w.pyPort = freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", w.redisPort)
	c := w.e.start("redis", w.refs["redis"], w.coord.Platform.Dir(), w.launchEnv("redis"))

	// Without a manifest the Coordinator activates nothing; the launcher retries.
	e2etest.WaitFor(t, 30*time.Second, "the launcher to ask the Coordinator", func() (bool, string) {
		logs := c.logs()
		return strings.Contains(logs, "coordinator not available yet"), tail(logs, 1000)
	})
	if listening(addr) || !c.running() {
		t.Fatalf("before activation: listening %v, running %v; want a waiting launcher and no Redis\n%s", listening(addr), c.running(), c.logs())
	}

	operator := w.env.NewUser(t, "operator")
	w.operator = operator.TLS
	if _, err := client.New(w.coord.Addrs.Client, w.coord.root).SetManifest(t.Context(), w.manifest(t, operator.CertPEM)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	e2etest.WaitFor(t, 60*time.Second, "Redis to listen on "+addr, func() (bool, string) { return listening(addr), tail(c.logs(), 1000) })
	if !strings.Contains(c.logs(), "activated; starting the application") {
		t.Fatalf("Redis listens, but the launcher log does not show an activation:\n%s", c.logs())
	}

	op := client.New(w.coord.Addrs.Client, w.coord.root, client.WithCertificate(w.operator))
	secrets, err := op.Secrets(t.Context(), "redis_password")
	if err != nil {
		t.Fatalf("read the Redis password as the operator: %v", err)
	}
	password := hex.EncodeToString(secrets["redis_password"].Value)

	roots := x509.NewCertPool()
	roots.AddCert(w.coord.root)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "redis.e2e", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to Redis, verifying its certificate against the deployment root only: %v", err)
	}
	defer conn.Close()
	r := &resp{t: t, conn: conn, br: bufio.NewReader(conn)}
	if got := r.do("PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING before AUTH = %q; want -NOAUTH", got)
	}
	if got := r.do("AUTH", "not-"+password); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Fatalf("AUTH with a wrong password = %q; want -WRONGPASS", got)
	}
	for _, step := range [][2]string{{"AUTH " + password, "+OK"}, {"PING", "+PONG"}, {"SET cloister confidential", "+OK"}, {"GET cloister", "confidential"}} {
		if got := r.do(strings.Fields(step[0])...); got != step[1] {
			t.Fatalf("%s = %q; want %q", strings.Replace(step[0], password, "<password>", 1), got, step[1])
		}
	}

	// A client trusting anything but the deployment root refuses Redis.
	pool := x509.NewCertPool()
	pool.AddCert(w.env.NewUser(t, "not-the-root").Cert)
	if c2, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "redis.e2e"}); err == nil {
		c2.Close()
		t.Fatal("a client trusting another root accepted Redis' certificate")
	}
}

// resp speaks the Redis protocol (RESP2) by hand.
type resp struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// do sends a command and returns the reply: "+OK", "-ERR …", ":1", or a
// bulk string's content.
func (r *resp) do(args ...string) string {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	r.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(r.conn, b.String()); err != nil {
		r.t.Fatal(err)
	}
	line, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatal(err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return line
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		r.t.Fatal(err)
	}
	return string(buf[:n])
}

// runPython starts the Python service before its file key is uploaded:
// it cannot decrypt its files until the operator uploads the key. Then a
// client holding a workload certificate (activated from the simulated
// platform) reads the protected data over mutual TLS.
func runPython(t *testing.T, w *world) {
	addr := fmt.Sprintf("127.0.0.1:%d", w.pyPort)
	c := w.e.start("python", w.refs["python"], w.coord.Platform.Dir(), w.launchEnv("pysvc"))
	e2etest.WaitFor(t, 30*time.Second, "the launcher to wait for the file key", func() (bool, string) {
		logs := c.logs()
		return contains(logs, "coordinator not available yet", "pysvc_files_key"), tail(logs, 1000)
	})
	if listening(addr) {
		t.Fatal("the Python service listens before its file key was uploaded")
	}
	fileKey := readFile(t, filepath.Join(w.dir, "pysvc.key")) // written by convert --key-file
	op := client.New(w.coord.Addrs.Client, w.coord.root, client.WithCertificate(w.operator))
	if err := op.SetSecrets(t.Context(), map[string][]byte{"pysvc_files_key": fileKey}); err != nil {
		t.Fatalf("upload the protected-file key: %v", err)
	}
	e2etest.WaitFor(t, 60*time.Second, "the Python service to listen on "+addr, func() (bool, string) { return listening(addr), tail(c.logs(), 1000) })

	cert := activateTestClient(t, w)
	roots := x509.NewCertPool()
	roots.AddCert(w.coord.root)
	get := func(certs []tls.Certificate) (map[string]string, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots, ServerName: "pysvc.e2e", Certificates: certs}}}
		res, err := hc.Get("https://" + addr + "/")
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		var body map[string]string
		return body, json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body)
	}
	body, err := get([]tls.Certificate{cert})
	if err != nil {
		t.Fatalf("GET over mTLS: %v", err)
	}
	if body["data"] != string(w.secrets["data.txt"]) || body["module"] != w.module || body["client"] != "testclient" {
		t.Fatalf("the service answered %q; want the protected data file, the protected module's value and client testclient", body)
	}
	if _, err := get(nil); err == nil {
		t.Fatal("the service answered a client without a certificate")
	}
}

// activateTestClient activates workload testclient from the simulated
// platform, as a launcher would, and returns its certificate.
func activateTestClient(t *testing.T, w *world) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "testclient"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.DialMesh(t.Context(), w.coord.Addrs.Mesh, w.coord.Expect())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mrenclave [32]byte
	rand.Read(mrenclave[:])
	issuer := &attest.SimIssuer{Platform: w.coord.Platform, Body: attest.SimEnclaveBody(mrenclave, w.mrsigner, 99, 1)}
	resp, err := s.Activate(t.Context(), "testclient", "test-1", csr, issuer)
	if err != nil {
		t.Fatalf("activate the test client: %v", err)
	}
	certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err != nil || len(certs) < 2 {
		t.Fatalf("activation gave certificate chain %q: %v", resp.CertificateChain, err)
	}
	return tls.Certificate{Certificate: [][]byte{certs[0].Raw, certs[1].Raw}, PrivateKey: key, Leaf: certs[0]}
}

// runTampered runs the image changed after conversion: the launcher
// refuses it before contacting the Coordinator, and the app never runs.
func runTampered(t *testing.T, w *world) {
	c := w.e.start("python-tampered", w.refs["python-tampered"], w.coord.Platform.Dir(), w.launchEnv("pysvc"))
	code := c.wait(60 * time.Second)
	logs := c.logs()
	if code == 0 || !contains(logs, "refusing to start", "/srv/app/app.py: expected") || strings.Contains(logs, "TAMPERED APP RAN") {
		t.Fatalf("tampered image: exit %d; want non-zero, a refusal naming /srv/app/app.py, and no application output\n%s", code, logs)
	}
}

// runWrongSigner runs Redis converted with a key the manifest does not
// admit: the Coordinator refuses it, so it gets no secrets and Redis never
// starts.
func runWrongSigner(t *testing.T, w *world) {
	c := w.e.start("redis-wrong-signer", w.refs["redis-wrong-signer"], w.coord.Platform.Dir(), w.launchEnv("redis"))
	code := c.wait(60 * time.Second)
	logs := c.logs()
	if code == 0 || !contains(logs, "activation failed", "coordinator refused") || strings.Contains(logs, "Ready to accept connections") {
		t.Fatalf("wrong signer: exit %d; want non-zero, a refused activation, and no Redis\n%s", code, logs)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
