package demo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

func (d *run) steps(ctx context.Context) error {
	fmt.Fprintf(d.out, "Cloister demo: a confidential deployment on this machine, in SIMULATION mode.\n")
	fmt.Fprintf(d.out, "There is no SGX here, so nothing is actually protected; every check below is the real one.\n")
	fmt.Fprintf(d.out, "Working directory: %s\n", d.dir)

	d.say("Creating a simulated SGX platform (a stand-in for Intel's root, PCK certificates and collateral).")
	platform, err := sim.Create(filepath.Join(d.dir, "sgx-platform"), sim.Options{})
	if err != nil {
		return err
	}
	d.detail("FMSPC %X; its root certificate is %s", platform.FMSPC(), filepath.Join(platform.Dir(), "root_ca.pem"))

	d.say("Starting the Coordinator (the attested control plane) on loopback.")
	addrs, err := d.startCoordinator(ctx, platform.Dir())
	if err != nil {
		return err
	}
	d.detail("client API %s, workload API %s, metrics http://%s/metrics", addrs.Client, addrs.Mesh, addrs.Metrics)

	d.say("Verifying the Coordinator as an outside client would: quote over a fresh nonce, bound to its TLS key.")
	expect := client.ExpectSimulated(platform.Root())
	v, err := client.Verify(ctx, addrs.Client, expect)
	if err != nil {
		return fmt.Errorf("verify the Coordinator: %w", err)
	}
	d.detail("verified: MRENCLAVE %s, TCB status %s", hex.EncodeToString(v.Result.Enclave.MREnclave[:]), v.Result.Platform.TCBStatus)
	d.detail("pinned deployment root %s", strings.TrimSpace(v.Root.Subject.CommonName))
	if _, err := client.Verify(ctx, addrs.Client, client.Expect{SGXRoot: verify.IntelRoot()}); err == nil {
		return fmt.Errorf("a verifier that trusts only Intel's root accepted the simulated Coordinator")
	} else {
		d.detail("as it must, a verifier that trusts only Intel's real root rejects it: %s", firstLine(err.Error()))
	}

	d.say("Signing enclave manifests for three unmodified programs (the converter does this for images).")
	ws, err := d.prepareWorkloads()
	if err != nil {
		return err
	}

	d.say("Setting the deployment manifest (first manifest: trust on first use).")
	c := client.New(addrs.Client, v.Root)
	r, err := c.SetManifest(ctx, ws.manifest)
	if err != nil {
		return fmt.Errorf("set manifest: %w", err)
	}
	d.detail("manifest version %d, SHA-256 %s", r.Version, r.Digest)

	env := func(workload string) []string {
		return []string{
			"CLOISTER_COORDINATOR=" + addrs.Mesh,
			"CLOISTER_WORKLOAD=" + workload,
			"CLOISTER_INSTANCE=" + workload + "-1",
			"CLOISTER_SIM_DIR=" + platform.Dir(),
			"CLOISTER_ENCLAVE_MANIFEST=" + filepath.Join(d.dir, workload, "enclave.json"),
			"CLOISTER_RETRY_TIMEOUT=10s",
		}
	}

	d.say("Launching the server: openssl s_server, attested and activated by the launcher; it gets its certificate, key, CA and a greeting with a secret as files.")
	server, err := d.start("server", env("server"), "launch")
	if err != nil {
		return err
	}
	if err := waitPort(ws.serverAddr, server, 20*time.Second); err != nil {
		return fmt.Errorf("server: %w\n%s", err, server.tail())
	}
	d.detail("openssl s_server is up on %s, requiring client certificates from the deployment CA", ws.serverAddr)

	d.say("Launching the client: curl over mutual TLS with only the certificate, key and token the Coordinator delivered.")
	cl, err := d.start("client", env("client"), "launch")
	if err != nil {
		return err
	}
	if err := cl.wait(30 * time.Second); err != nil {
		return fmt.Errorf("client: %w\n%s", err, cl.tail())
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "client", "got.txt"))
	if err != nil {
		return fmt.Errorf("client left no answer: %w", err)
	}
	d.detail("the server answered over mTLS: %q", strings.TrimSpace(string(got)))
	d.detail("the client found in it the token it received in its environment: both got the same secret")

	d.say("Launching a workload whose trusted file was changed after its manifest was signed.")
	tp, err := d.start("tampered", env("tampered"), "launch")
	if err != nil {
		return err
	}
	err = tp.wait(30 * time.Second)
	log := tp.tail()
	switch {
	case err == nil:
		return fmt.Errorf("the tampered workload started")
	case !strings.Contains(log, "refusing to start"):
		return fmt.Errorf("the tampered workload failed for another reason than its changed file: %v\n%s", err, log)
	}
	if _, err := os.Stat(ws.tamperedMarker); err == nil {
		return fmt.Errorf("the tampered program ran")
	}
	d.detail("the launcher refused it before contacting the Coordinator:")
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(l, "refusing") || strings.Contains(l, "app.sh") {
			d.detail("  %s", shorten(strings.TrimSpace(l), 200))
		}
	}

	d.say("Reading the Coordinator's metrics.")
	if err := d.showMetrics(ctx, addrs.Metrics); err != nil {
		return err
	}
	if d.cfg.Keep {
		d.say("Leaving the Coordinator running (--keep).")
		d.detail("talk to it with:")
		d.detail("  export CLOISTER_CONFIG_DIR=%s", filepath.Join(d.dir, "cli-config"))
		d.detail("  cloister verify --coordinator %s --simulation %s", addrs.Client, platform.Dir())
		d.detail("  cloister status --coordinator %s", addrs.Client)
		d.detail("  cloister manifest get --coordinator %s", addrs.Client)
		d.detail("stop it with: kill %d   (files stay in %s)", d.coord.cmd.Process.Pid, d.dir)
	}
	return nil
}

// addrs are the Coordinator's bound addresses, from its --addr-file.
type addrs struct {
	Client  string `json:"client"`
	Mesh    string `json:"mesh"`
	Metrics string `json:"metrics"`
}

func (d *run) startCoordinator(ctx context.Context, simDir string) (*addrs, error) {
	addrFile := filepath.Join(d.dir, "coordinator-addrs.json")
	p, err := d.start("coordinator", nil, "coordinator",
		"--simulation", simDir,
		"--data-dir", filepath.Join(d.dir, "coordinator-data"),
		"--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--addr-file", addrFile, "--log-format", "text")
	if err != nil {
		return nil, err
	}
	d.coord = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			var a addrs
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("coordinator address file: %w", err)
			}
			return &a, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("the Coordinator exited: %v\n%s", p.err, p.tail())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the Coordinator did not start within 20s\n%s", p.tail())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitPort waits until addr accepts TCP connections, failing early if p exits.
func waitPort(addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("exited before listening: %v", p.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %s", addr, timeout)
}

func (d *run) showMetrics(ctx context.Context, addr string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cloister_activations_total{") {
			d.detail("%s", l)
			found++
		}
	}
	if found == 0 {
		return fmt.Errorf("metrics show no activations")
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return shorten(s, 160)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
