package kubestate_test

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestSweep: shards no manifest names (a replica that crashed between writing a shard and the
// manifest) are deleted once this replica has seen them unnamed for the grace, and nothing else
// is: not the shards the manifest names, not a stray it saw only now (whatever its clock says),
// not another state's shard, nothing without a manifest.
func TestSweep(t *testing.T) {
	cluster := kubetest.Start(t)
	c := cluster.Client
	opts := kubestate.Options{ShardSize: 4 << 10}
	db, r, _ := replica(t, c, "swept", "", opts)
	value := make([]byte, 200)
	if err := db.Update(t.Context(), func(tx *store.Tx) error {
		for i := range 100 {
			binary.BigEndian.PutUint64(value, uint64(i))
			if err := tx.Put("b", fmt.Sprintf("k%03d", i), value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	named := shardNames(t, c, "swept")
	if len(named) < 2 {
		t.Fatalf("%d shard Secrets, want several", len(named))
	}
	stray := strayShard(t, c, "swept", "swept-0123456789abcdef")
	other := strayShard(t, c, "other", "other-0123456789abcdef")

	if n, err := r.Sweep(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("first sweep: deleted %d, %v; want 0, nil (a stray is deleted only once seen unnamed for the grace)", n, err)
	}
	if _, err := r.Sweep(t.Context(), time.Second); err == nil || !strings.Contains(err.Error(), "at least a minute") {
		t.Fatalf("sweep with a 1 s grace: %v, want a refusal naming the minimum", err)
	}
	// A stray made after the first sweep is young to this replica, whatever the clocks say.
	late := strayShard(t, c, "swept", "swept-fedcba9876543210")

	r.SetClockForTest(2 * time.Hour)
	n, err := r.Sweep(t.Context(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("sweep two hours later: deleted %d, %v; want 1, nil", n, err)
	}
	if !slices.Contains(shardNames(t, c, "swept"), late) {
		t.Fatalf("the stray %s first seen by this sweep was deleted", late)
	}
	// A replica whose clock jumps ahead does not delete shards it has not watched for the
	// grace: a fresh Remote (a restarted replica) two hours fast deletes nothing at first.
	fast, err := kubestate.New(c, kubestate.Options{Namespace: ns, Name: "swept"})
	if err != nil {
		t.Fatal(err)
	}
	fast.SetClockForTest(2 * time.Hour)
	if n, err := fast.Sweep(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("first sweep of a replica whose clock is two hours fast: deleted %d, %v; want 0, nil", n, err)
	}
	r.SetClockForTest(4 * time.Hour)
	if n, err := r.Sweep(t.Context(), time.Hour); err != nil || n != 1 {
		t.Fatalf("sweep after the late stray's grace: deleted %d, %v; want 1, nil", n, err)
	}
	got := shardNames(t, c, "swept")
	if !slices.Equal(got, named) {
		t.Errorf("shards after the sweep %v, want exactly the named ones %v", got, named)
	}
	if slices.Contains(got, stray) {
		t.Errorf("stray %s survived", stray)
	}
	if len(shardNames(t, c, "other")) != 1 {
		t.Errorf("the shard %s of another state was deleted", other)
	}
	// The state still reads and commits after the sweep.
	if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Put("b", "after", value) }); err != nil {
		t.Fatalf("write after the sweep: %v", err)
	}

	// No manifest: nothing is deleted (a state being created may own every shard there is).
	lone, err := kubestate.New(c, kubestate.Options{Namespace: ns, Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lone.Sweep(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	lone.SetClockForTest(2 * time.Hour)
	if n, err := lone.Sweep(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep without a manifest: deleted %d, %v; want 0, nil", n, err)
	}
}

func shardNames(t *testing.T, c kubernetes.Interface, state string) []string {
	t.Helper()
	list, err := c.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "cloister.dev/state=" + state + ",cloister.dev/state-role=shard"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.Items {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// strayShard creates a shard Secret of state no manifest names, as a crashed commit leaves one.
func strayShard(t *testing.T, c kubernetes.Interface, state, name string) string {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "cloister", "cloister.dev/state": state, "cloister.dev/state-role": "shard"}},
		Data: map[string][]byte{"shard": []byte("stray")},
	}
	if _, err := c.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}
