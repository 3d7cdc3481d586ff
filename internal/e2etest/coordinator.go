package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// NewPlatform creates a simulated SGX platform in the directory name below the Env's.
func (e *Env) NewPlatform(t testing.TB, name string) *sim.Platform {
	t.Helper()
	p, err := sim.Create(e.Path(name), sim.Options{})
	if err != nil {
		t.Fatalf("create simulated platform: %v", err)
	}
	return p
}

// Addrs are a Coordinator's bound addresses, from its --addr-file.
type Addrs struct {
	Client  string `json:"client"`
	Mesh    string `json:"mesh"`
	Metrics string `json:"metrics"`
}

// Coordinator is a `cloister coordinator --simulation` process. It can be stopped and started
// again on the same data directory.
type Coordinator struct {
	// Name names the Coordinator's processes, "<Name> (start <n>)".
	Name string
	// Platform is the simulated platform it runs on.
	Platform *sim.Platform
	// DataDir is its --data-dir.
	DataDir string
	// Addrs are the addresses of the current (or last) start.
	Addrs Addrs
	// Proc is the current (or last) process.
	Proc *Proc

	e        *Env
	addrFile string
	starts   int
}

// StartCoordinator starts `cloister coordinator` on platform p with its state in dataDir,
// listening on loopback, and waits until it has written its address file. at fixes the
// addresses (a restart on the same ones); nil means port 0 for each.
func (e *Env) StartCoordinator(t testing.TB, name string, p *sim.Platform, dataDir string, at *Addrs) *Coordinator {
	t.Helper()
	c := e.coordinator(name, p, dataDir)
	c.Start(t, at)
	return c
}

func (e *Env) coordinator(name string, p *sim.Platform, dataDir string) *Coordinator {
	return &Coordinator{e: e, Name: name, Platform: p, DataDir: dataDir, addrFile: e.Path(name + "-addrs.json")}
}

func (c *Coordinator) args(at *Addrs) []string {
	want := Addrs{Client: "127.0.0.1:0", Mesh: "127.0.0.1:0", Metrics: "127.0.0.1:0"}
	if at != nil {
		want = *at
	}
	return []string{"coordinator", "--simulation", c.Platform.Dir(), "--data-dir", c.DataDir,
		"--client-addr", want.Client, "--mesh-addr", want.Mesh, "--metrics-addr", want.Metrics,
		"--addr-file", c.addrFile}
}

// Start starts the Coordinator again (after [Coordinator.Stop]), as StartCoordinator does.
func (c *Coordinator) Start(t testing.TB, at *Addrs) {
	t.Helper()
	if err := os.Remove(c.addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	c.starts++
	c.Proc = c.e.Start(t, fmt.Sprintf("%s (start %d)", c.Name, c.starts), c.e.BaseEnv(), c.e.Bins.Cloister, c.args(at)...)
	WaitFor(t, StartTimeout, c.Name+" to write its address file", func() (bool, string) {
		if b, err := os.ReadFile(c.addrFile); err == nil {
			if err := json.Unmarshal(b, &c.Addrs); err != nil {
				t.Fatalf("%s: address file %q: %v", c.Name, b, err)
			}
			return true, ""
		}
		if c.Proc.Exited() {
			t.Fatalf("%s exited while starting (%v):\n%s", c.Name, c.Proc.Err(), c.Proc.Output())
		}
		return false, "no address file yet"
	})
	if at != nil && c.Addrs != *at {
		t.Fatalf("%s listens on %+v, want %+v", c.Name, c.Addrs, *at)
	}
}

// Stop interrupts the Coordinator and requires a clean exit that it logged.
func (c *Coordinator) Stop(t testing.TB) {
	t.Helper()
	c.Proc.Interrupt(t)
	if out := c.Proc.Output(); !strings.Contains(out, `"msg":"coordinator stopped"`) {
		t.Fatalf("%s exited 0 but did not log \"coordinator stopped\":\n%s", c.Name, out)
	}
}

// Restart stops the Coordinator and starts it on the same data directory and addresses.
func (c *Coordinator) Restart(t testing.TB) {
	t.Helper()
	at := c.Addrs
	c.Stop(t)
	c.Start(t, &at)
}

// Expect is what a client expects of the Coordinator: the simulated Coordinator's identity,
// on its platform.
func (c *Coordinator) Expect() client.Expect { return client.ExpectSimulated(c.Platform.Root()) }

// RunFailingCoordinator runs a Coordinator that must fail to start, and returns its exit code
// and output. It fails t if the Coordinator got as far as listening.
func (e *Env) RunFailingCoordinator(t testing.TB, name string, p *sim.Platform, dataDir string) (int, string) {
	t.Helper()
	c := e.coordinator(name, p, dataDir)
	proc := e.Start(t, name, e.BaseEnv(), e.Bins.Cloister, c.args(nil)...)
	code := proc.Wait(t, StartTimeout)
	if _, err := os.Stat(c.addrFile); err == nil {
		t.Errorf("%s wrote its address file: it got as far as listening", name)
	}
	return code, proc.Output()
}

// Metrics fetches the Coordinator's /metrics and returns every sample by its series
// (name{label="value",…} with labels sorted by name, as Prometheus prints them; see [Series]).
func (c *Coordinator) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), RunTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.Addrs.Metrics+"/metrics", nil)
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

// Series formats a metric series as Prometheus prints it; labels alternate name and value
// and must be given sorted by name.
func Series(name string, labels ...string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}
