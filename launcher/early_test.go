package launcher

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEarlyDialDoesNotHoldAFailedLaunch: the Coordinator is dialled while the launch checks
// itself; a launch that fails its own checks returns at once, not when a Coordinator that
// accepts connections and never answers lets the dial time out.
func TestEarlyDialDoesNotHoldAFailedLaunch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, silent: the TLS handshake waits
		}
	}()
	cfg := Config{Coordinator: ln.Addr().String(), Workload: "app", Instance: "i", TEE: TEESimulation, SimDir: t.TempDir(),
		EnclaveManifest: filepath.Join(t.TempDir(), "missing.json"), Log: slog.New(slog.DiscardHandler)}
	start := time.Now()
	_, err = Prepare(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "enclave manifest") {
		t.Fatalf("Prepare = %v; want the missing enclave manifest refused", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Prepare took %s to refuse; it waited for the silent Coordinator", took)
	}
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Error("the launch never dialled the Coordinator early")
	}
}
