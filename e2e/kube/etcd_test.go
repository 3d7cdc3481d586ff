package kube

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/internal/loadgen"
)

// TestHAEtcdRestart: etcd crashes under two replicas. While it is down every activation,
// every verification of a replica and every secret write fails within seconds with a clear,
// retryable NOT_READY (launchers retry it), none is acknowledged, and no application would
// start; when etcd is back the replicas serve again without a restart, and every count and
// secret acknowledged before the crash is there, with nothing added.
func TestHAEtcdRestart(t *testing.T) {
	kube := kubetest.Start(t)
	e := e2etest.New(t)
	h := startHA(t, kube, "etcd-state", 2)
	defer h.stop(t)
	admin := e.NewUser(t, "admin")
	if _, err := h.client(t, 0, nil).SetManifest(t.Context(), haManifest(t, 1000, admin)); err != nil {
		t.Fatal(err)
	}
	if err := h.client(t, 0, admin).SetSecrets(t.Context(), map[string][]byte{"note": []byte("before")}); err != nil {
		t.Fatal(err)
	}
	before, _, _, _ := h.activate(t, "limited", 40, 8)
	if before != 40 {
		t.Fatalf("%d of 40 activations before the crash succeeded", before)
	}

	// Launchers that verified a replica before the crash, and ones that come during it.
	issuer := &attest.SimIssuer{Platform: h.platform, Body: attest.SimEnclaveBody(loadgen.BenchMREnclave, loadgen.BenchMREnclave, 1, 1)}
	sessions := make([]*client.MeshSession, len(h.replicas))
	for i, r := range h.replicas {
		s, err := client.DialMesh(t.Context(), r.addrs.Mesh, h.expect())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions[i] = s
	}
	writer := h.client(t, 1, admin)
	if err := kube.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	notReady := func(what string, err error) {
		t.Helper()
		apiErr, ok := errors.AsType[*client.APIError](err)
		if !ok || apiErr.Code != api.CodeNotReady || !apiErr.Temporary() {
			t.Errorf("%s with etcd down: %v, want a NOT_READY refusal (retryable)", what, err)
		}
	}
	for i, r := range h.replicas {
		k, err := client.NewWorkloadKey("limited")
		if err != nil {
			t.Fatal(err)
		}
		_, err = sessions[i].Activate(t.Context(), "limited", fmt.Sprintf("outage-%d", i), k.CSR, issuer)
		notReady(fmt.Sprintf("activation on replica %d", i), err)
		_, err = client.DialMesh(t.Context(), r.addrs.Mesh, h.expect())
		notReady(fmt.Sprintf("verifying replica %d", i), err)
	}
	err := writer.SetSecrets(t.Context(), map[string][]byte{"note": []byte("during")})
	notReady("secret write", err)
	t.Logf("with etcd down: 2 activations, 2 verifications and a secret write refused in %v", time.Since(start).Round(time.Millisecond))

	if err := kube.StartEtcd(t.Context()); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 30*time.Second, "both replicas to activate again", func() (bool, string) {
		for i, r := range h.replicas {
			res, _ := loadgen.Run(t.Context(), loadgen.Config{Mesh: r.addrs.Mesh, Platform: h.platform, Expect: h.expect(),
				Workload: "free", N: 1, Concurrency: 1})
			if res == nil || len(res.Latencies) != 1 {
				return false, fmt.Sprintf("replica %d: %+v", i, res)
			}
		}
		return true, ""
	})
	after, _, _, _ := h.activate(t, "limited", 40, 8)
	if after != 40 {
		t.Fatalf("%d of 40 activations after etcd's restart succeeded", after)
	}
	for i := range h.replicas {
		st, err := h.client(t, i, nil).Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Activations["limited"]; got != 80 {
			t.Errorf("replica %d reports %d limited activations, want 80 (40 before the crash, 40 after, none during)", i, got)
		}
		got, err := h.client(t, i, admin).Secrets(t.Context(), "note")
		if err != nil {
			t.Fatal(err)
		}
		if v := string(got["note"].Value); v != "before" {
			t.Errorf("replica %d reads the note %q, want %q (the write during the outage was refused)", i, v, "before")
		}
	}
}
