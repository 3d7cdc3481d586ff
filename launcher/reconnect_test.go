package launcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TLS record content type of application data; in TLS 1.3 every encrypted record has it.
const recordAppData = 23

// activationRecord is the workload's encrypted record that carries the activation (see
// cutBeforeActivate).
const activationRecord = 4

// cut says where a cutProxy breaks the first connection.
type cut int

const (
	// cutBeforeActivate closes the connection when the workload starts sending its fourth
	// encrypted record: the first is its handshake Finished, the second the quote request (the
	// Coordinator's verification), the third the manifest request (the check of where the
	// launch writes, before activation), the fourth the activation. The Coordinator never sees
	// it.
	cutBeforeActivate cut = iota
	// cutAfterActivate lets the activation through and closes the connection when the
	// Coordinator starts answering it: the Coordinator activated, the workload never learns it.
	cutAfterActivate
)

// cutProxy forwards loopback TCP connections to a Coordinator and breaks the first one at a
// point of the attested exchange, closing both sides as a Coordinator that closes the
// connection would. It reads TLS record headers only: it cannot read or change the records.
type cutProxy struct {
	ln      net.Listener
	backend string
	at      cut
	wg      sync.WaitGroup
	// mu guards conns, first and cutDone.
	mu      sync.Mutex
	conns   []net.Conn
	first   bool // the first connection was accepted
	cutDone bool // and broken
}

func startCutProxy(t *testing.T, backend string, at cut) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, at: at}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// didCut reports whether the first connection was broken.
func (p *cutProxy) didCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cutDone
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		isFirst := !p.first
		p.first = true
		p.mu.Unlock()
		if !isFirst {
			p.wg.Go(func() { io.Copy(b, c); b.Close() })
			p.wg.Go(func() { io.Copy(c, b); c.Close() })
			continue
		}
		p.wg.Go(func() { p.breakFirst(c, b) })
	}
}

// breakFirst forwards the first connection record by record until the cut.
func (p *cutProxy) breakFirst(c, b net.Conn) {
	var (
		mu      sync.Mutex
		sent    int  // application-data records from the workload
		started bool // the activation was forwarded
	)
	stop := func() {
		p.mu.Lock()
		p.cutDone = true
		p.mu.Unlock()
		c.Close()
		b.Close()
	}
	var wg sync.WaitGroup
	wg.Go(func() { // workload → Coordinator
		copyRecords(b, c, func(typ byte) bool {
			mu.Lock()
			defer mu.Unlock()
			if typ == recordAppData {
				sent++
			}
			if sent >= activationRecord {
				if p.at == cutBeforeActivate {
					stop()
					return false
				}
				started = true
			}
			return true
		})
		b.Close()
	})
	wg.Go(func() { // Coordinator → workload
		copyRecords(c, b, func(typ byte) bool {
			mu.Lock()
			defer mu.Unlock()
			if p.at == cutAfterActivate && started && typ == recordAppData {
				stop()
				return false
			}
			return true
		})
		c.Close()
	})
	wg.Wait()
}

// copyRecords copies TLS records from src to dst while pass, called before each record with its
// content type, returns true.
func copyRecords(dst io.Writer, src io.Reader, pass func(typ byte) bool) {
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if !pass(hdr[0]) {
			return
		}
		if _, err := dst.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

// TestPrepareReattestsAfterConnectionClosed is the regression test of finding 9: under load one
// launch in 100,000 failed with "the attested connection to the Coordinator was closed" and its
// container would have exited 1. The Coordinator's connection is closed between its verification
// and the activation, and after the activation; the launch must verify the Coordinator again on
// a new connection, activate with a new quote and go on, with no retry time configured, and the
// Coordinator must count only the activations it received.
func TestPrepareReattestsAfterConnectionClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   cut
		want uint64 // activations the Coordinator counts
	}{
		{"closed before the activation", cutBeforeActivate, 1},
		{"closed after the activation, before the answer", cutAfterActivate, 2}, // the lost one and the retry
	} {
		t.Run(tc.name, func(t *testing.T) {
			coord := startTestCoordinator(t)
			dir := realTempDir(t)
			path, _ := writeApp(t, dir, nil)
			out := filepath.Join(dir, "out")
			coord.setManifest(t, map[string]any{
				"packages":  map[string]any{"p": signedPackage(t, 3)},
				"workloads": map[string]any{"app": map[string]any{"package": "p", "files": map[string]string{out + "/key.pem": "{{.Workload.Key}}"}}},
			})
			proxy := startCutProxy(t, coord.mesh, tc.at)
			var logs strings.Builder
			cfg := Config{
				Coordinator: proxy.addr(), Workload: "app", Instance: "app-1", TEE: TEESimulation, SimDir: coord.platform.Dir(),
				EnclaveManifest: path, RetryTimeout: 0, Log: slog.New(slog.NewTextHandler(&logs, nil)),
			}
			if _, err := Prepare(t.Context(), cfg); err != nil {
				t.Fatalf("Prepare: %v\n%s", err, logs.String())
			}
			if !proxy.didCut() {
				t.Fatalf("the proxy never closed the connection: the test tests nothing")
			}
			if !strings.Contains(logs.String(), "the connection to the coordinator closed; verifying it again on a new connection") {
				t.Errorf("the re-attestation was not logged:\n%s", logs.String())
			}
			if b, err := os.ReadFile(filepath.Join(out, "key.pem")); err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("key.pem: %v", err)
			}
			if n := coord.c.ActivationCounts()["app"]; n != tc.want {
				t.Errorf("the Coordinator counted %d activations, want %d", n, tc.want)
			}
		})
	}
}

// envRunLauncher makes the test binary run Main instead of the tests (see TestMain).
const envRunLauncher = "CLOISTER_TEST_RUN_LAUNCHER"

func TestMain(m *testing.M) {
	if os.Getenv(envRunLauncher) == "1" {
		os.Exit(Main(context.Background(), os.Getenv, os.Environ(), os.Stderr))
	}
	os.Exit(m.Run())
}

// TestMainStartsAfterConnectionClosed runs the launcher as a container would (this test binary
// as cloister-launch, configured by the environment) against a Coordinator whose connection
// closes before the activation: the application must start, not the launcher exit 1.
func TestMainStartsAfterConnectionClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	tc := startTestCoordinator(t)
	dir := realTempDir(t)
	path, _ := writeApp(t, dir, nil)
	out := filepath.Join(dir, "out")
	tc.setManifest(t, map[string]any{
		"packages": map[string]any{"p": signedPackage(t, 3)},
		"workloads": map[string]any{"app": map[string]any{
			"package": "p",
			"files":   map[string]string{out + "/key.pem": "{{.Workload.Key}}"},
			"argv":    []string{"sh", "-c", "test -s " + out + "/key.pem && echo started $0", "{{.Workload.Instance}}"},
		}},
	})
	proxy := startCutProxy(t, tc.mesh, cutBeforeActivate)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envRunLauncher+"=1",
		EnvCoordinator+"="+proxy.addr(), EnvWorkload+"=app", EnvInstance+"=app-1", EnvTEE+"="+TEESimulation,
		EnvSimDir+"="+tc.platform.Dir(), EnvEnclaveManifest+"="+path, EnvRetryTimeout+"=0s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("launcher: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if got := stdout.String(); got != "started app-1\n" {
		t.Errorf("application printed %q, want %q\nstderr:\n%s", got, "started app-1\n", stderr.String())
	}
	if !proxy.didCut() {
		t.Errorf("the proxy never closed the connection: the test tests nothing")
	}
}
