package kubestate_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestUnavailable: an API server that does not answer is a retryable error (ErrUnavailable),
// for loads and commits, and OpenRemote creates nothing.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	c, err := kubernetes.NewForConfig(&rest.Config{Host: "https://" + addr, Timeout: 2 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := kubestate.New(c, kubestate.Options{Namespace: "default", Name: "state"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(t.Context(), nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Load from an API server that is down: %v, want ErrUnavailable", err)
	}
	next := &store.RemoteState{Header: []byte("h"), Buckets: map[string]map[string][]byte{}}
	if _, err := r.Commit(t.Context(), nil, next); !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit to an API server that is down: %v, want ErrUnavailable", err)
	}
	dir := t.TempDir()
	if _, err := store.OpenRemote(t.Context(), dir, theSealer(t), r, store.Options{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("OpenRemote with the API server down: %v, want ErrUnavailable", err)
	}
}

func TestNewValidates(t *testing.T) {
	c, _ := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	for _, o := range []kubestate.Options{
		{Namespace: "", Name: "s"},
		{Namespace: "Bad_NS", Name: "s"},
		{Namespace: "ns", Name: ""},
		{Namespace: "ns", Name: "UPPER"},
		{Namespace: "ns", Name: "s", ShardSize: 10},
		{Namespace: "ns", Name: "s", ShardSize: 1 << 20},
	} {
		if _, err := kubestate.New(c, o); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
	if _, err := kubestate.New(nil, kubestate.Options{Namespace: "ns", Name: "s"}); err == nil {
		t.Error("New without a client succeeded")
	}
}
