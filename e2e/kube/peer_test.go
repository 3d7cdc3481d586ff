package kube

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/loadgen"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/cloister-dev/cloister/store"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// keyHolder is a recovery key holder: an X25519 key.
type keyHolder struct {
	name string
	priv *ecdh.PrivateKey
}

func (k *keyHolder) pubPEM(t *testing.T) string {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestHAPeerKeySharing: replica 0 creates the state; replicas 1 and 2 start with empty data
// directories (their own simulated seal keys: new CPUs), get the data key from a peer found
// through the peer Service's EndpointSlices, and serve activations. Each replica's copy of the
// key, sealed to its own seal key, is on the key shelf. Then every replica is gone and one
// comes back on a new CPU with no peer to ask: it waits for recovery and says so in its status;
// two of three key holders recover it, it serves the same deployment, and a further replica on
// a new CPU gets the key from it.
func TestHAPeerKeySharing(t *testing.T) {
	kube := kubetest.Start(t)
	h := startHA(t, kube, "peer-state", 3)
	for i, r := range h.replicas[1:] {
		raw, err := os.ReadFile(filepath.Join(r.dataDir, simSealKey))
		if err != nil {
			t.Fatal(err)
		}
		first, _ := os.ReadFile(filepath.Join(h.replicas[0].dataDir, simSealKey))
		if string(raw) == string(first) {
			t.Fatalf("replica %d runs on replica 0's simulated seal key, want its own", i+1)
		}
		if !strings.Contains(r.out.String(), "received the data key from a peer") {
			t.Errorf("replica %d did not log receiving the key from a peer:\n%s", i+1, r.out)
		}
	}
	holders := make([]*keyHolder, 3)
	keys := map[string]any{}
	for i := range holders {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		holders[i] = &keyHolder{name: []string{"ada", "bob", "cy"}[i], priv: k}
		keys[holders[i].name] = holders[i].pubPEM(t)
	}
	m := map[string]any{}
	if err := json.Unmarshal(haManifest(t, 1000, nil), &m); err != nil {
		t.Fatal(err)
	}
	m["governance"] = map[string]any{"recovery": map[string]any{"threshold": 2, "keys": keys}}
	set, err := h.client(t, 1, nil).SetManifest(t.Context(), haJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.RecoveryShares) != 3 {
		t.Fatalf("manifest set returned %d recovery shares, want 3", len(set.RecoveryShares))
	}
	ok, errs, _, _ := h.activate(t, "free", 300, 6)
	if ok != 300 || errs != 0 {
		t.Fatalf("%d of 300 activations succeeded over 3 replicas (%d errors)", ok, errs)
	}
	shelf, err := kube.Client.CoreV1().Secrets("default").Get(t.Context(), h.name+"-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for name := range shelf.Data {
		if strings.HasPrefix(name, "key.") {
			copies++
		}
	}
	if copies != 3 || shelf.Data["recovery"] == nil {
		t.Fatalf("the key shelf holds %d key copies and recovery record %t, want 3 and true", copies, shelf.Data["recovery"] != nil)
	}
	before, err := client.Verify(t.Context(), h.replicas[0].addrs.Client, h.expect())
	if err != nil {
		t.Fatal(err)
	}
	rootBefore := before.Root

	// Every replica is gone; one comes back on a new CPU, and nobody can give it the key.
	h.stop(t)
	lone := h.start(t, "replica-new-cpu", filepath.Join(h.dir, "replica-new-cpu"))
	h.replicas = []*haReplica{lone}
	sess, err := client.DialRecovery(t.Context(), lone.addrs.Client, h.expect())
	if err != nil {
		t.Fatalf("the replica on a new CPU is not in recovery mode: %v\n%s", err, lone.out)
	}
	if r := sess.Challenge.Reason; !strings.Contains(r, "waiting for recovery") || !strings.Contains(r, "no running replica of Service default/peer-state-peers gave it") {
		t.Fatalf("recovery reason %q, want it to say it waits for recovery because no peer gave the key", r)
	}
	if !sess.Challenge.Simulation {
		t.Error("the recovery challenge is not marked simulation")
	}
	// Two of the three holders recover it.
	for i, sh := range set.RecoveryShares[:2] {
		var hk *keyHolder
		for _, k := range holders {
			if k.name == sh.Holder {
				hk = k
			}
		}
		if i > 0 {
			if sess, err = client.DialRecovery(t.Context(), lone.addrs.Client, h.expect()); err != nil {
				t.Fatal(err)
			}
		}
		pub, _ := x509.MarshalPKIXPublicKey(hk.priv.Public())
		y, err := sh.Decrypt(hk.priv, pub)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := recovery.NewSubmission(sh, y, hk.priv, &sess.Challenge.Challenge)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := sess.Submit(t.Context(), sub)
		sess.Close()
		if err != nil {
			t.Fatalf("share of %s: %v", sh.Holder, err)
		}
		if resp.Recovered != (i == 1) {
			t.Fatalf("after %d shares Recovered = %t", i+1, resp.Recovered)
		}
	}
	var st *api.Status
	e2etest.WaitFor(t, 10*time.Second, "the recovered replica to serve", func() (bool, string) {
		v, err := client.Verify(t.Context(), lone.addrs.Client, h.expect())
		if err != nil {
			return false, err.Error()
		}
		if !v.Root.Equal(rootBefore) {
			t.Fatal("the recovered replica serves another deployment root")
		}
		st, err = client.New(lone.addrs.Client, v.Root).Status(t.Context())
		return err == nil, "status"
	})
	if st.Activations["free"] < 300 || st.State != api.StateRunning {
		t.Errorf("status after recovery: %+v", st)
	}
	// A further replica on a new CPU gets the key from the recovered one.
	h.replicas = append(h.replicas, h.start(t, "replica-after-recovery", filepath.Join(h.dir, "replica-after-recovery")))
	ok, errs, _, _ = h.activate(t, "free", 100, 4)
	if ok != 100 || errs != 0 {
		t.Fatalf("%d of 100 activations after the recovery (%d errors)", ok, errs)
	}
	h.stop(t)
	if _, err := os.Stat(filepath.Join(h.replicas[1].dataDir, store.KeyFile)); err != nil {
		t.Errorf("the replica that got the key from the recovered one has no key file: %v", err)
	}
}

// TestHARecoveryLeftThroughPeer: the only replica holding the key stops, and a replica on a
// new CPU starts with no peer to ask: it waits in recovery mode. When the old replica comes
// back, the waiting one asks the peers again on its own (every 30 s), gets the key, leaves
// recovery mode without a restart and without any key holder, and serves the same deployment.
func TestHARecoveryLeftThroughPeer(t *testing.T) {
	kube := kubetest.Start(t)
	h := startHA(t, kube, "rejoin-state", 1)
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	holder := &keyHolder{name: "ada", priv: k}
	m := map[string]any{}
	if err := json.Unmarshal(haManifest(t, 1000, nil), &m); err != nil {
		t.Fatal(err)
	}
	// A holder, so that a replica without the key waits for recovery rather than exits.
	m["governance"] = map[string]any{"recovery": map[string]any{"threshold": 1, "keys": map[string]any{holder.name: holder.pubPEM(t)}}}
	if _, err := h.client(t, 0, nil).SetManifest(t.Context(), haJSON(t, m)); err != nil {
		t.Fatal(err)
	}
	v, err := client.Verify(t.Context(), h.replicas[0].addrs.Client, h.expect())
	if err != nil {
		t.Fatal(err)
	}
	old := h.replicas[0]
	h.stop(t)

	waiting := h.start(t, "replica-new-cpu", filepath.Join(h.dir, "replica-new-cpu"))
	sess, err := client.DialRecovery(t.Context(), waiting.addrs.Client, h.expect())
	if err != nil {
		t.Fatalf("the replica on a new CPU is not in recovery mode: %v\n%s", err, waiting.out)
	}
	sess.Close()

	back := h.start(t, old.name, old.dataDir)
	h.replicas = []*haReplica{waiting, back}
	start := time.Now()
	e2etest.WaitFor(t, 75*time.Second, "the waiting replica to get the key from the one back and serve", func() (bool, string) {
		got, err := client.Verify(t.Context(), waiting.addrs.Client, h.expect())
		if err != nil {
			return false, err.Error()
		}
		if !got.Root.Equal(v.Root) {
			t.Fatal("the replica that left recovery mode serves another deployment root")
		}
		return true, ""
	})
	t.Logf("left recovery mode through a peer %v after the peer came back", time.Since(start).Round(time.Second))
	res, err := loadgen.Run(t.Context(), loadgen.Config{Mesh: waiting.addrs.Mesh, Platform: h.platform, Expect: h.expect(),
		Workload: "limited", N: 20, Concurrency: 2})
	if err != nil || len(res.Latencies) != 20 {
		t.Fatalf("activations on the replica that left recovery mode: %+v, %v", res, err)
	}
	if !strings.Contains(waiting.out.String(), "received the data key from a peer") {
		t.Errorf("the waiting replica did not log receiving the key from a peer:\n%s", waiting.out)
	}
	h.stop(t)
}
