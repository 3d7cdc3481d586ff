package coordinator_test

import (
	"bufio"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/coordinator"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/store"
)

type recoveryWorld struct {
	cfg     coordinator.Config
	p       *sim.Platform
	privs   []*ecdh.PrivateKey
	shares  []*recovery.Share
	oldSeal []byte // the simulated seal key the state was sealed under
	seq     uint64 // the newest audit entry before the move
}

// newRecoveryWorld runs a Coordinator, sets a manifest with n X25519 recovery holders and
// threshold k, stops it, and gives it a new simulated seal key (a new CPU).
func newRecoveryWorld(tb testing.TB, n, k int) *recoveryWorld {
	tb.Helper()
	dir := tb.TempDir()
	p, err := sim.Create(filepath.Join(dir, "platform"), sim.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	w := &recoveryWorld{p: p, cfg: coordinator.Config{DataDir: filepath.Join(dir, "data"), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0", Simulation: p.Dir()}}
	keys := map[string]any{}
	for i := range n {
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(priv.PublicKey())
		keys[fmt.Sprintf("h%d", i+1)] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		w.privs = append(w.privs, priv)
	}
	var m map[string]any
	if err := json.Unmarshal(loadgen.Manifest("web"), &m); err != nil {
		tb.Fatal(err)
	}
	m["governance"] = map[string]any{"recovery": map[string]any{"threshold": k, "keys": keys}}
	raw, _ := json.Marshal(m)

	c, err := coordinator.New(tb.Context(), w.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Core().SetManifest(tb.Context(), nil, raw)
	if err != nil {
		tb.Fatal(err)
	}
	w.shares = resp.RecoveryShares
	if len(w.shares) != n {
		tb.Fatalf("%d shares, want %d", len(w.shares), n)
	}
	h, err := c.Core().AuditHead(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	w.seq = h.Seq
	if err := c.Close(); err != nil {
		tb.Fatal(err)
	}
	if w.oldSeal, err = os.ReadFile(filepath.Join(w.cfg.DataDir, "simulation-seal.key")); err != nil {
		tb.Fatal(err)
	}
	newKey := make([]byte, seal.KeySize)
	rand.Read(newKey)
	if err := os.WriteFile(filepath.Join(w.cfg.DataDir, "simulation-seal.key"), newKey, 0o600); err != nil {
		tb.Fatal(err)
	}
	return w
}

// submit hands holder i's share to the Coordinator at addr.
func (w *recoveryWorld) submit(tb testing.TB, addr string, i int) (*api.RecoveryResponse, error) {
	tb.Helper()
	sess, err := client.DialRecovery(tb.Context(), addr, client.ExpectSimulated(w.p.Root()))
	if err != nil {
		tb.Fatal(err)
	}
	defer sess.Close()
	der, _ := x509.MarshalPKIXPublicKey(w.privs[i].PublicKey())
	y, err := w.shares[i].Decrypt(w.privs[i], der)
	if err != nil {
		tb.Fatal(err)
	}
	sub, err := recovery.NewSubmission(w.shares[i], y, w.privs[i], &sess.Challenge.Challenge)
	if err != nil {
		tb.Fatal(err)
	}
	return sess.Submit(tb.Context(), sub)
}

// TestRecoveryCrashBeforeReseal: a recovery cut short after its audit entry committed but
// before the data key was sealed again (the reseal fails, then the process stops: what a
// kill -9 at that point leaves) still needs recovery at the next start; the shares still work,
// a duplicate share is refused, and completing the recovery then switches the same listeners
// to the recovered state, which a restart unseals on its own. The log holds both completions
// and its chain still verifies (every start checks it).
func TestRecoveryCrashBeforeReseal(t *testing.T) {
	w := newRecoveryWorld(t, 3, 2)
	c, stop := run(t, w.cfg)
	if c.Recovery() == nil || c.Core() != nil {
		t.Fatal("a Coordinator on a new seal key did not start in recovery mode")
	}
	st := c.Recovery().Status()
	if st.State != api.StateRecovery || !strings.Contains(st.Message, "cannot be unsealed with this CPU's seal key") || !st.Recovery.Possible {
		t.Fatalf("status in recovery mode: %+v", st)
	}
	addr := c.Addrs().Client
	coordinator.FailResealOnce(errors.New("injected: crash before the reseal"))
	if r, err := w.submit(t, addr, 0); err != nil || r.Recovered {
		t.Fatalf("first share: %+v, %v", r, err)
	}
	if _, err := w.submit(t, addr, 1); err == nil || !strings.Contains(err.Error(), "INTERNAL") {
		t.Fatalf("the share that completes the recovery, with the reseal failing: %v", err)
	}
	if c.Recovery().Status().State != api.StateRecovery {
		t.Fatal("left recovery mode although the reseal failed")
	}
	stop() // the crash

	sealer, err := seal.NewSimulated(filepath.Join(w.cfg.DataDir, "simulation-seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(w.cfg.DataDir, sealer, store.Options{}); !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("after a recovery without reseal: %v, want ErrUnseal", err)
	}
	c, stop = run(t, w.cfg)
	if c.Recovery() == nil {
		t.Fatal("not in recovery mode after the cut-short recovery")
	}
	addr = c.Addrs().Client
	if r, err := w.submit(t, addr, 0); err != nil || r.Recovered {
		t.Fatalf("first share: %+v, %v", r, err)
	}
	if _, err := w.submit(t, addr, 0); err == nil || !strings.Contains(err.Error(), "already accepted") {
		t.Fatalf("duplicate share: %v", err)
	}
	if r, err := w.submit(t, addr, 2); err != nil || !r.Recovered {
		t.Fatalf("second share: %+v, %v", r, err)
	}
	// The same listeners now serve the recovered state.
	v, err := client.Verify(t.Context(), addr, client.ExpectSimulated(w.p.Root()))
	if err != nil {
		t.Fatalf("verify the recovered Coordinator: %v", err)
	}
	if s, err := client.New(addr, v.Root).Status(t.Context()); err != nil || s.State != api.StateRunning || s.ManifestVersion != 1 {
		t.Fatalf("status after recovery: %+v, %v", s, err)
	}
	// Two completions, each after its start entry: the cut-short one and this one.
	if h, err := c.Core().AuditHead(t.Context()); err != nil || h.Seq != w.seq+4 {
		t.Fatalf("audit log after two completions: %+v, %v; want entry %d", h, err, w.seq+4)
	}
	stop()
	c, stop = run(t, w.cfg)
	if c.Recovery() != nil {
		t.Fatal("still in recovery mode after a completed recovery")
	}
	stop()
}

// TestRecoveryResealRetry: when the reseal fails after the recovery entry committed, the same
// holders completing the same session again recover the Coordinator without a second
// "recovered" entry (the retry adds only its start entry).
func TestRecoveryResealRetry(t *testing.T) {
	w := newRecoveryWorld(t, 3, 2)
	c, _ := run(t, w.cfg)
	addr := c.Addrs().Client
	coordinator.FailResealOnce(errors.New("injected: the disk is full"))
	w.submit(t, addr, 0)
	if _, err := w.submit(t, addr, 1); err == nil || !strings.Contains(err.Error(), "INTERNAL") {
		t.Fatalf("the completing share with the reseal failing: %v", err)
	}
	if r, err := w.submit(t, addr, 0); err != nil || r.Recovered {
		t.Fatalf("first share again: %+v, %v", r, err)
	}
	if r, err := w.submit(t, addr, 1); err != nil || !r.Recovered {
		t.Fatalf("second share again: %+v, %v", r, err)
	}
	if h, err := c.Core().AuditHead(t.Context()); err != nil || h.Seq != w.seq+3 {
		t.Fatalf("audit log after a retried completion: %+v, %v; want entry %d (start, recovered, start)", h, err, w.seq+3)
	}
}

// rebuild combines the first k shares into the data key, as a Coordinator would.
func (w *recoveryWorld) rebuild(tb testing.TB) []byte {
	tb.Helper()
	raw, err := store.ReadRecovery(w.cfg.DataDir)
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := recovery.ParseRecord(raw)
	if err != nil {
		tb.Fatal(err)
	}
	ys := map[int][]byte{}
	for i := range rec.Threshold {
		der, _ := x509.MarshalPKIXPublicKey(w.privs[i].PublicKey())
		y, err := w.shares[i].Decrypt(w.privs[i], der)
		if err != nil {
			tb.Fatal(err)
		}
		ys[i+1] = y
	}
	key, err := rec.Combine(ys)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// BenchmarkRecoverState measures the store's part of a recovery once the key is rebuilt: prove
// it opens the whole state (store.Recover checks every page and value) and seal it again
// (atomic key file replacement, fsynced). Holders' round trips and the core's start are not
// included.
func BenchmarkRecoverState(b *testing.B) {
	w := newRecoveryWorld(b, 5, 3)
	key := w.rebuild(b)
	sealer, err := seal.NewSimulated(filepath.Join(w.cfg.DataDir, "simulation-seal.key"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		db, err := store.Recover(w.cfg.DataDir, sealer, key, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Reseal(); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

// TestRecoveryImpossible: a state that does not unseal and has no recovery record is refused
// at start (fail closed), saying why and that nothing can recover it.
func TestRecoveryImpossible(t *testing.T) {
	dir := t.TempDir()
	p, err := sim.Create(filepath.Join(dir, "platform"), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{DataDir: filepath.Join(dir, "data"), ClientAddr: "127.0.0.1:0", MeshAddr: "127.0.0.1:0", Simulation: p.Dir()}
	c, err := coordinator.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	newKey := make([]byte, seal.KeySize)
	rand.Read(newKey)
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "simulation-seal.key"), newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = coordinator.New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot be unsealed") || !strings.Contains(err.Error(), "recovery is impossible") || !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("New without a recovery record: %v", err)
	}
}

// TestRecoveryRecordNotTheManifests: the record beside the sealed key is plaintext that the
// host can replace. A host that knows the data key (it built the state, or as here reads it
// with the old simulated seal key) writes a record naming itself the only holder; the shares
// rebuild a key that matches the record's MAC and opens the state, but the manifest in force
// in that state names other holders, so the recovery is refused, the Coordinator stays in
// recovery mode, and nothing is written to the state.
func TestRecoveryRecordNotTheManifests(t *testing.T) {
	w := newRecoveryWorld(t, 2, 2)
	keyFile := filepath.Join(w.cfg.DataDir, "simulation-seal.key")
	newKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the sealing CPU's key (the host's knowledge of the data key) to forge the record.
	if err := os.WriteFile(keyFile, w.oldSeal, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(t.Context(), w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.Core().AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	sealer, err := seal.NewSimulated(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(w.cfg.DataDir, sealer, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldRaw, _ := db.Recovery()
	old, err := recovery.ParseRecord(oldRaw)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := ecdh.X25519().GenerateKey(rand.Reader)
	mder, _ := x509.MarshalPKIXPublicKey(mallory.PublicKey())
	var (
		shares []*recovery.Share
		rec    *recovery.Record
	)
	if err := db.WithDataKey(func(k []byte) error {
		rec, shares, err = recovery.Split(k, old.Deployment, []recovery.HolderKey{{Name: "mallory", PublicKey: mder}}, 1, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(rec)
	if err := db.SetRecovery(raw); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.WriteFile(keyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}

	c, stop := run(t, w.cfg)
	if c.Recovery() == nil {
		t.Fatal("not in recovery mode on a new seal key")
	}
	addr := c.Addrs().Client
	sess, err := client.DialRecovery(t.Context(), addr, client.ExpectSimulated(w.p.Root()))
	if err != nil {
		t.Fatal(err)
	}
	y, err := shares[0].Decrypt(mallory, mder)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := recovery.NewSubmission(shares[0], y, mallory, &sess.Challenge.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sess.Submit(t.Context(), sub)
	sess.Close()
	if err == nil || !strings.Contains(err.Error(), "not the state's split") || !strings.Contains(err.Error(), "[mallory]") {
		t.Fatalf("a record naming a holder the manifest does not name: %+v, %v; want refused", resp, err)
	}
	if st := c.Recovery().Status(); st.State != api.StateRecovery {
		t.Fatalf("status after the refused recovery: %+v", st)
	}
	s, err := client.DialRecovery(t.Context(), addr, client.ExpectSimulated(w.p.Root()))
	if err != nil {
		t.Fatalf("the Coordinator left recovery mode after the refusal: %v", err)
	}
	s.Close()
	stop()

	// Nothing was written: on the old key the state has only one more start entry.
	if err := os.WriteFile(keyFile, w.oldSeal, 0o600); err != nil {
		t.Fatal(err)
	}
	c, stop = run(t, w.cfg)
	if c.Core() == nil {
		t.Fatal("the state does not open on its own key after the refused recovery")
	}
	h, err := c.Core().AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq != head.Seq+1 {
		t.Fatalf("audit log at %d after the refused recovery, want %d (one start, no recovery entry)", h.Seq, head.Seq+1)
	}
	stop()
}

// TestRecoveryKeptAliveConnection: a connection to the recovery server kept alive across the
// completing share is told to connect again and closed, never answered as if the Coordinator
// were still in recovery mode; a new connection reaches the recovered state.
func TestRecoveryKeptAliveConnection(t *testing.T) {
	w := newRecoveryWorld(t, 2, 2)
	c, stop := run(t, w.cfg)
	defer stop()
	addr := c.Addrs().Client
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the status route needs no verification
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	status := func() (*http.Response, []byte, error) {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", api.PathStatus, addr); err != nil {
			return nil, nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	if resp, body, err := status(); err != nil || resp.StatusCode != 200 || resp.Close || !strings.Contains(string(body), api.StateRecovery) {
		t.Fatalf("status in recovery mode: %v, %v, %s", err, resp, body)
	}
	w.submit(t, addr, 0)
	if r, err := w.submit(t, addr, 1); err != nil || !r.Recovered {
		t.Fatalf("completing share: %+v, %v", r, err)
	}
	// The recovery server's shutdown closes the idle connection; a request that came first
	// is told to connect again.
	switch resp, body, err := status(); {
	case err != nil:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("status on the kept-alive connection after the recovery: %v; want the connection closed", err)
		}
	case resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || !strings.Contains(string(body), api.CodeNotReady) || !strings.Contains(string(body), "connect again"):
		t.Fatalf("status on the kept-alive connection after the recovery: %d, close %v, %s; want NOT_READY, connect again, and the connection closed", resp.StatusCode, resp.Close, body)
	}
	// What such a request gets, whenever it comes: deterministically, on the recovery
	// server's handler itself.
	rec := httptest.NewRecorder()
	c.RecoveryClientHandler().ServeHTTP(rec, httptest.NewRequest("GET", api.PathStatus, nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Connection") != "close" ||
		!strings.Contains(rec.Body.String(), api.CodeNotReady) || !strings.Contains(rec.Body.String(), "connect again") {
		t.Errorf("the recovery server after the recovery: %d, Connection %q, %s; want NOT_READY, connect again, Connection: close",
			rec.Code, rec.Header().Get("Connection"), rec.Body.String())
	}
	v, err := client.Verify(t.Context(), addr, client.ExpectSimulated(w.p.Root()))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := client.New(addr, v.Root).Status(t.Context()); err != nil || s.State != api.StateRunning {
		t.Fatalf("status on a new connection: %+v, %v", s, err)
	}
}
