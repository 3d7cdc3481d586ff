package coordinator_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	cfg    coordinator.Config
	p      *sim.Platform
	privs  []*ecdh.PrivateKey
	shares []*recovery.Share
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
	if err := c.Close(); err != nil {
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

// TestRecoveryCrashBeforeReseal: a recovery cut short after the rebuilt key opened the state
// but before the data key was sealed again (what a kill -9 at that point leaves) still needs
// recovery at the next start; a duplicate share is refused, and completing the recovery then
// switches the same listeners to the recovered state, which a restart unseals on its own.
func TestRecoveryCrashBeforeReseal(t *testing.T) {
	w := newRecoveryWorld(t, 3, 2)
	c, err := coordinator.New(t.Context(), w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovery() == nil || c.Core() != nil {
		t.Fatal("a Coordinator on a new seal key did not start in recovery mode")
	}
	st := c.Recovery().Status()
	if st.State != api.StateRecovery || !strings.Contains(st.Message, "cannot be unsealed with this CPU's seal key") || !st.Recovery.Possible {
		t.Fatalf("status in recovery mode: %+v", st)
	}
	c.Close()

	// The crash: the key is rebuilt and the state opened, no reseal.
	key := w.rebuild(t)
	sealer, err := seal.NewSimulated(filepath.Join(w.cfg.DataDir, "simulation-seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Recover(w.cfg.DataDir, sealer, key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.Open(w.cfg.DataDir, sealer, store.Options{}); !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("after a recovery without reseal: %v, want ErrUnseal", err)
	}

	c, stop := run(t, w.cfg)
	if c.Recovery() == nil {
		t.Fatal("not in recovery mode after the cut-short recovery")
	}
	addr := c.Addrs().Client
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
	stop()
	c, stop = run(t, w.cfg)
	if c.Recovery() != nil {
		t.Fatal("still in recovery mode after a completed recovery")
	}
	stop()
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
