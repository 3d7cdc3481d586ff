package controlplane

import (
	"encoding/hex"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestLostActivationAnswer: the Coordinator commits an activation of a workload with
// max_activations 1 and its answer is lost (the connection drops as the answer starts). The
// real launcher verifies the Coordinator again, retries with the same key, is admitted as the
// activation already counted, and starts the application: the workload's one activation is
// not used up by a lost packet. A second instance is still refused by the limit.
func TestLostActivationAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	co := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)
	a := e.newApp(t, "single", signer, nil)
	signerID := enclave.MRSigner(&signer.PublicKey)
	m := map[string]any{
		"packages":  map[string]any{"p": map[string]any{"mrsigner": hex.EncodeToString(signerID[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{"single": map[string]any{"package": "p", "max_activations": 1, "env": map[string]string{"INSTANCE": "{{.Workload.Instance}}"}}},
	}
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(co.Addrs.Client, v.Root)
	if _, err := c.SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}

	lossy := newAnswerDropper(t, co.Addrs.Mesh)
	launched := e.startLaunch(t, a, launchOpts{instance: "one", mesh: lossy.addr, simDir: p.Dir()})
	if code := launched.Wait(t, e2etest.RunTimeout); code != 0 {
		t.Fatalf("%s exited with code %d, want 0 (the retried activation admitted):\n%s", launched.Name, code, launched.Output())
	}
	if lossy.dropped.Load() != 1 {
		t.Fatalf("the proxy dropped %d activation answers, want 1: the test did not lose the answer", lossy.dropped.Load())
	}
	if !a.ran("one") {
		t.Fatalf("the application did not run after the retried activation:\n%s", launched.Output())
	}
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Activations["single"] != 1 {
		t.Errorf("activations of single: %d, want 1 (the lost answer's activation and its retry are one)", st.Activations["single"])
	}
	e.launchFails(t, a, launchOpts{instance: "two", mesh: co.Addrs.Mesh, simDir: p.Dir()}, `workload "single" reached its maximum of 1 activations`)
	co.Stop(t)
}

// answerDropper forwards TCP connections to target. On the first connection that carries an
// activation request, it closes both sides as the Coordinator starts to answer it: the
// Coordinator has committed the activation, the launcher never sees the answer. An activation
// request is told apart from the rest by its size alone (the stream is TLS): it carries a
// quote, several KB, where the handshake and the quote request are a few hundred bytes.
type answerDropper struct {
	target  string
	addr    string
	dropped atomic.Int32
}

// activationRequestBytes is more than a ClientHello and a GET, less than a quote.
const activationRequestBytes = 2048

func newAnswerDropper(t *testing.T, target string) *answerDropper {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	d := &answerDropper{target: target, addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go d.forward(conn)
		}
	}()
	return d
}

func (d *answerDropper) forward(down net.Conn) {
	up, err := net.Dial("tcp", d.target)
	if err != nil {
		down.Close()
		return
	}
	var (
		mu      sync.Mutex
		pending int // client bytes since the server last wrote
	)
	closeBoth := func() { down.Close(); up.Close() }
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := down.Read(buf)
			if n > 0 {
				mu.Lock()
				pending += n
				mu.Unlock()
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		closeBoth()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			mu.Lock()
			big := pending >= activationRequestBytes
			pending = 0
			mu.Unlock()
			if big && d.dropped.CompareAndSwap(0, 1) {
				break // the answer to an activation: lost
			}
			if _, werr := down.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	closeBoth()
}
