package injector

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/coordtest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// proxy forwards loopback connections to a backend until it is cut: then it refuses new ones
// and closes the open ones, as a Coordinator that went away.
type proxy struct {
	ln      net.Listener
	backend string
	wg      sync.WaitGroup
	mu      sync.Mutex // guards conns
	conns   []net.Conn
}

func startProxy(t *testing.T, backend string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(b, c); b.Close() })
			p.wg.Go(func() { io.Copy(c, b); c.Close() })
		}
	})
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// TestCoordinatorGone: while the Coordinator answers, a known workload is admitted and an
// unknown one denied; once it is gone and the cached manifest's TTL has passed, every labelled
// pod is denied (fail closed); an unlabelled pod is still admitted unchanged. A Coordinator
// that cannot be verified (the wrong simulated root) denies too.
func TestCoordinatorGone(t *testing.T) {
	coord := coordtest.Start(t)
	if _, err := coord.Core.SetManifest(t.Context(), nil, loadgen.Manifest("web")); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, coord.ClientAddr)
	h := testHandler(false)
	clock := time.Now()
	h.manifests = &manifests{addr: p.ln.Addr().String(), expect: client.ExpectSimulated(coord.Platform.Root()), ttl: 10 * time.Second, now: func() time.Time { return clock }}
	pod := seedPod(t)
	req := &admissionv1.AdmissionRequest{Namespace: "apps"}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if ops, err := h.admit(ctx, req, pod); err != nil || len(ops) == 0 {
		t.Fatalf("admit a known workload = %d ops, %v; want a patch", len(ops), err)
	}
	pod.Labels[Label] = "ghost"
	if _, err := h.admit(ctx, req, pod); err == nil || !strings.Contains(err.Error(), `names a workload the Cloister manifest lacks; its workloads are: web`) {
		t.Fatalf("admit an unknown workload: %v", err)
	}

	p.cut()
	pod.Labels[Label] = "web"
	clock = clock.Add(5 * time.Second) // within the TTL: the cached manifest still answers
	if _, err := h.admit(ctx, req, pod); err != nil {
		t.Fatalf("admit within the TTL with the Coordinator gone: %v", err)
	}
	clock = clock.Add(6 * time.Second) // past it
	_, err := h.admit(ctx, req, pod)
	if _, ok := err.(*denial); !ok || !strings.Contains(err.Error(), "denied, not admitted unprotected") {
		t.Fatalf("admit with the Coordinator gone: %v; want a denial", err)
	}
	delete(pod.Labels, Label)
	if ops, err := h.admit(ctx, req, pod); err != nil || len(ops) != 0 {
		t.Fatalf("admit an unlabelled pod with the Coordinator gone = %v, %v; want it unchanged", ops, err)
	}

	// A Coordinator that does not prove the expected identity.
	other := coordtest.Start(t)
	h.manifests = &manifests{addr: coord.ClientAddr, expect: client.ExpectSimulated(other.Platform.Root()), ttl: time.Second, now: time.Now}
	pod.Labels[Label] = "web"
	if _, err := h.admit(ctx, req, pod); err == nil || !strings.Contains(err.Error(), "could not be verified") {
		t.Fatalf("admit with an unverifiable Coordinator: %v; want a denial", err)
	}
}
