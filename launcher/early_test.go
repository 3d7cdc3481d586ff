package launcher

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEarlyDialDoesNotHoldAFailedLaunch: the Coordinator is dialled while the launch checks
// itself; a launch that fails its own checks returns at once, not when a Coordinator that
// accepts connections and never answers lets the dial time out. The enclave manifest is a FIFO
// that gets its (malformed) bytes only once the Coordinator has seen the dial, so the launch
// fails with the dial under way, whatever the speed of its other steps.
func TestEarlyDialDoesNotHoldAFailedLaunch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fifo := filepath.Join(t.TempDir(), "enclave.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// feed gives the FIFO its bytes: Prepare's read of it ends.
	feed := func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Write([]byte("{not a manifest"))
			w.Close()
		}
	}
	dialled := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close() // held open, silent, until the test ends: the TLS handshake waits
		close(dialled)
		feed()
		<-t.Context().Done()
	}()
	cfg := Config{Coordinator: ln.Addr().String(), Workload: "app", Instance: "i", TEE: TEESimulation, SimDir: t.TempDir(),
		EnclaveManifest: fifo, Log: slog.New(slog.DiscardHandler)}
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		_, err := Prepare(t.Context(), cfg)
		done <- result{err, time.Since(start)}
	}()
	select {
	case <-dialled:
	case <-time.After(10 * time.Second):
		go feed() // let Prepare end
		t.Error("the launch never dialled the Coordinator early")
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Prepare did not return")
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "enclave manifest") {
		t.Fatalf("Prepare = %v; want the malformed enclave manifest refused", r.err)
	}
	if r.took > 3*time.Second && !t.Failed() {
		t.Errorf("Prepare took %s to refuse; it waited for the silent Coordinator", r.took)
	}
}
