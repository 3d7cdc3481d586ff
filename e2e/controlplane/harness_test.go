package controlplane

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/logbuf"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// Deadlines. Everything runs on loopback; these only bound how long a broken run hangs.
const (
	startTimeout = 20 * time.Second // a Coordinator writes its address file
	stopTimeout  = 15 * time.Second // a process exits after SIGINT
	runTimeout   = 30 * time.Second // a launcher or CLI run finishes
)

// logRecord is the captured output of one process.
type logRecord struct {
	name string
	out  *logbuf.Buffer // stderr, and stdout unless stdout is kept apart
	// stdout is the standard output of a command whose purpose is to print secret values
	// (cloister secret get). It is not a log and is not scanned for secrets.
	secretOutput *logbuf.Buffer
}

// env is one test's world: a temporary directory, the processes started in it and everything
// they printed. Its cleanup stops leftover processes and, if the test failed, prints every
// captured line.
type env struct {
	t      *testing.T
	dir    string
	cfgDir string // the CLI's CLOISTER_CONFIG_DIR (pinned roots)

	mu    sync.Mutex
	logs  []*logRecord
	procs []*proc
	seq   int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real processes; skipped with -short")
	}
	e := &env{t: t, dir: t.TempDir()}
	e.cfgDir = filepath.Join(e.dir, "cli-config")
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }

func (e *env) cleanup() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	for _, p := range procs {
		if p.exited() {
			continue
		}
		if !e.t.Failed() {
			e.t.Errorf("%s was still running at the end of the test; stopping it", p.name)
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if e.t.Failed() {
		e.dumpLogs()
	}
}

func (e *env) dumpLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.logs {
		e.t.Logf("===== %s =====\n%s", l.name, l.out.String())
		if l.secretOutput != nil {
			e.t.Logf("===== %s (stdout, holds secrets: not shown) =====", l.name)
		}
	}
}

func (e *env) record(name string, secretOutput bool) *logRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	r := &logRecord{name: fmt.Sprintf("%03d %s", e.seq, name), out: &logbuf.Buffer{}}
	if secretOutput {
		r.secretOutput = &logbuf.Buffer{}
	}
	e.logs = append(e.logs, r)
	return r
}

// proc is a process the test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logRecord
	done chan struct{}
	err  error // cmd.Wait's result, valid once done is closed
}

// start starts bin with args and exactly the environment environ (nothing is inherited).
func (e *env) start(name string, environ []string, bin string, args ...string) *proc {
	e.t.Helper()
	r := e.record(name, false)
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: r, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) output() string { return p.log.out.String() }

// wait waits until p exits and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; output so far:\n%s", p.name, timeout, p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// interrupt sends SIGINT and requires a clean exit (code 0).
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited before it was asked to stop: %v\n%s", p.name, p.err, p.output())
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	if code := p.wait(t, stopTimeout); code != 0 {
		t.Fatalf("%s exited with code %d after SIGINT, want 0 (a clean shutdown):\n%s", p.name, code, p.output())
	}
}

// waitFor polls cond until it reports true, failing the test after timeout. cond's message
// says what was last seen; it is part of the failure.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", timeout, what, last)
		}
		<-tick.C
	}
}

// baseEnv is the environment every process gets: nothing from the test's own environment.
func (e *env) baseEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + e.dir, "LANG=C"}
}

// ---- simulated platforms -------------------------------------------------------------------

func (e *env) newPlatform(name string) *sim.Platform {
	e.t.Helper()
	p, err := sim.Create(e.path(name), sim.Options{})
	if err != nil {
		e.t.Fatalf("create simulated platform: %v", err)
	}
	return p
}

// coordinatorExpect is what a client expects of a simulated Coordinator on p.
func coordinatorExpect(p *sim.Platform) client.Expect {
	return client.Expect{SGXRoot: p.Root(), MRSigner: &attest.SimCoordinatorSigner, ISVProdID: attest.CoordinatorProdID}
}

// coordinatorMeasurement is the simulated MRENCLAVE of the cloister binary under test.
func coordinatorMeasurement(t *testing.T) [32]byte {
	t.Helper()
	h := fileSHA256(t, cloisterBin)
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

// ---- the Coordinator -----------------------------------------------------------------------

// addrs are a Coordinator's bound addresses, from its --addr-file.
type addrs struct {
	Client  string `json:"client"`
	Mesh    string `json:"mesh"`
	Metrics string `json:"metrics"`
}

type coordinator struct {
	e        *env
	name     string
	simDir   string
	dataDir  string
	addrFile string
	addrs    addrs
	p        *proc
	starts   int
}

// startCoordinator starts `cloister coordinator` on loopback. at fixes the addresses (for a
// restart on the same ones); nil means :0.
func (e *env) startCoordinator(name, simDir, dataDir string, at *addrs) *coordinator {
	e.t.Helper()
	c := &coordinator{e: e, name: name, simDir: simDir, dataDir: dataDir, addrFile: e.path(name + "-addrs.json")}
	c.start(e.t, at)
	return c
}

func (c *coordinator) args(at *addrs) []string {
	want := addrs{Client: "127.0.0.1:0", Mesh: "127.0.0.1:0", Metrics: "127.0.0.1:0"}
	if at != nil {
		want = *at
	}
	return []string{"coordinator", "--simulation", c.simDir, "--data-dir", c.dataDir,
		"--client-addr", want.Client, "--mesh-addr", want.Mesh, "--metrics-addr", want.Metrics,
		"--addr-file", c.addrFile}
}

func (c *coordinator) start(t *testing.T, at *addrs) {
	t.Helper()
	if err := os.Remove(c.addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	c.starts++
	c.p = c.e.start(fmt.Sprintf("%s (start %d)", c.name, c.starts), c.e.baseEnv(), cloisterBin, c.args(at)...)
	waitFor(t, startTimeout, c.name+" to write its address file", func() (bool, string) {
		if b, err := os.ReadFile(c.addrFile); err == nil {
			if err := json.Unmarshal(b, &c.addrs); err != nil {
				t.Fatalf("%s: address file %q: %v", c.name, b, err)
			}
			return true, ""
		}
		if c.p.exited() {
			t.Fatalf("%s exited while starting (%v):\n%s", c.name, c.p.err, c.p.output())
		}
		return false, "no address file yet"
	})
	if at != nil && c.addrs != *at {
		t.Fatalf("%s listens on %+v, want %+v", c.name, c.addrs, *at)
	}
}

// stop interrupts the Coordinator and requires a clean exit that it logged.
func (c *coordinator) stop(t *testing.T) {
	t.Helper()
	c.p.interrupt(t)
	if out := c.p.output(); !strings.Contains(out, `"msg":"coordinator stopped"`) {
		t.Fatalf("%s exited 0 but did not log \"coordinator stopped\":\n%s", c.name, out)
	}
}

func (c *coordinator) restart(t *testing.T) {
	t.Helper()
	at := c.addrs
	c.stop(t)
	c.start(t, &at)
}

// runFailingCoordinator starts a Coordinator that must fail to start, and returns its exit code
// and output.
func (e *env) runFailingCoordinator(t *testing.T, name, simDir, dataDir string) (int, string) {
	t.Helper()
	c := &coordinator{e: e, name: name, simDir: simDir, dataDir: dataDir, addrFile: e.path(name + "-addrs.json")}
	p := e.start(name, e.baseEnv(), cloisterBin, c.args(nil)...)
	code := p.wait(t, startTimeout)
	if _, err := os.Stat(c.addrFile); err == nil {
		t.Errorf("%s wrote its address file: it got as far as listening", name)
	}
	return code, p.output()
}

// metrics fetches the Coordinator's /metrics and returns every sample by its series
// (name{label="value",…} with labels sorted by name, as Prometheus prints them).
func (c *coordinator) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.addrs.Metrics+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: status %d, %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series formats a metric series as Prometheus prints it; labels alternate name, value and
// must be given sorted by name.
func series(name string, labels ...string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// ---- the CLI -------------------------------------------------------------------------------

type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("cloister %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the cloister CLI with the test's configuration directory.
func (e *env) cli(t *testing.T, args ...string) cliResult { return e.runCLI(t, false, args...) }

// cliSecrets runs a CLI command whose standard output holds secret values; that output is
// kept out of the log scan.
func (e *env) cliSecrets(t *testing.T, args ...string) cliResult { return e.runCLI(t, true, args...) }

func (e *env) runCLI(t *testing.T, secretOutput bool, args ...string) cliResult {
	t.Helper()
	r := e.record("cli: cloister "+strings.Join(args, " "), secretOutput)
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cloisterBin, args...)
	cmd.Env = append(e.baseEnv(), "CLOISTER_CONFIG_DIR="+e.cfgDir)
	cmd.Dir = e.dir
	var stdout, stderr logbuf.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, r.out)
	if secretOutput {
		cmd.Stdout = io.MultiWriter(&stdout, r.secretOutput)
	} else {
		cmd.Stdout = io.MultiWriter(&stdout, r.out)
	}
	err := cmd.Run()
	res := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run cloister %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustCLI runs the CLI and requires exit code 0.
func (e *env) mustCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := e.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("%v\nwant exit code 0", r)
	}
	return r
}

// cliFails runs the CLI, requires exit code 1 and that stderr holds every substring in want.
func (e *env) cliFails(t *testing.T, want []string, args ...string) cliResult {
	t.Helper()
	r := e.cli(t, args...)
	if r.code != 1 {
		t.Errorf("%v\nwant exit code 1", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("cloister %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// user is a manifest user: a client certificate and its key on disk.
type user struct {
	name              string
	certPEM           string
	certFile, keyFile string
	tls               tls.Certificate
}

func (u *user) flags() []string { return []string{"--cert", u.certFile, "--key", u.keyFile} }

func (e *env) newUser(t *testing.T, name string) *user {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	u := &user{name: name, certFile: e.path("users", name+".crt"), keyFile: e.path("users", name+".key")}
	u.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	writeFile(t, u.certFile, []byte(u.certPEM), 0o644)
	writeFile(t, u.keyFile, keyPEM, 0o600)
	if u.tls, err = tls.X509KeyPair([]byte(u.certPEM), keyPEM); err != nil {
		t.Fatal(err)
	}
	return u
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b, 0o644)
	return b
}

// ---- raw API calls ---------------------------------------------------------------------------

// post sends body as it is to an API path, over TLS 1.3 without checking the server (these
// calls test how the Coordinator treats bad input, not whom the client trusts), optionally
// with a user's certificate. It returns the status and the decoded error body, if any.
func post(t *testing.T, addr, path string, body []byte, u *user) (int, api.ErrorBody) {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if u != nil {
		cfg.Certificates = []tls.Certificate{u.tls}
	}
	hc := &http.Client{Timeout: runTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
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
	e.mu.Lock()
	logs := slices.Clone(e.logs)
	e.mu.Unlock()
	all := map[string]string{}
	for name, v := range secrets {
		for n, s := range needles(name, v) {
			all[n] = s
		}
	}
	if len(all) < len(secrets) {
		t.Fatalf("only %d needles for %d secrets: some value is too short to search for", len(all), len(secrets))
	}
	for _, l := range logs {
		out := l.out.String()
		lines += strings.Count(out, "\n")
		for name, s := range all {
			if strings.Contains(out, s) {
				t.Errorf("log %q contains %s", l.name, name)
			}
		}
	}
	return lines
}
