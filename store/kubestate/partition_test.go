package kubestate_test

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/internal/kubetest"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestPartition: a replica cut off from the API server fails closed — its reads and writes are
// errors matching store.ErrUnavailable, never answers from the state it had — while a replica
// that still reaches the API server goes on writing. When the partition heals, the cut-off
// replica reads the newer state and writes on top of it: no write of either is lost.
func TestPartition(t *testing.T) {
	cluster := kubetest.Start(t)
	p := newProxy(t, hostOf(t, cluster.Config))
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Host = "https://" + p.addr
	cfg.Timeout = 3 * time.Second
	cut, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	dbA, _, dirA := replica(t, cluster.Client, "split", "", kubestate.Options{})
	dbB, _, _ := replica(t, cut, "split", dirA, kubestate.Options{})
	inc := func(db *store.DB) error {
		return db.Update(t.Context(), func(tx *store.Tx) error {
			_, err := tx.Next("counts", "w")
			return err
		})
	}
	for _, db := range []*store.DB{dbA, dbB} {
		if err := inc(db); err != nil {
			t.Fatal(err)
		}
	}

	p.cut()
	if err := inc(dbB); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write on the cut-off replica: %v, want ErrUnavailable", err)
	}
	if err := dbB.View(t.Context(), func(*store.Tx) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read on the cut-off replica: %v, want ErrUnavailable (a stale answer is a rollback)", err)
	}
	for range 5 {
		if err := inc(dbA); err != nil {
			t.Fatalf("write on the replica that reaches the API server: %v", err)
		}
	}

	p.heal()
	if err := inc(dbB); err != nil {
		t.Fatalf("write on the replica after the partition healed: %v", err)
	}
	for name, db := range map[string]*store.DB{"A": dbA, "B": dbB} {
		if got := count(t, db, "counts", "w"); got != 8 {
			t.Errorf("replica %s reads count %d, want 8 (2 before, 5 on A during, 1 on B after)", name, got)
		}
	}
}

func hostOf(t *testing.T, c *rest.Config) string {
	t.Helper()
	u, err := url.Parse(c.Host)
	if err != nil || u.Host == "" {
		t.Fatalf("API server URL %q: %v", c.Host, err)
	}
	return u.Host
}

// proxy forwards TCP connections to target until cut, which closes the listener and every
// connection; heal listens again on the same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, addr: ln.Addr().String()}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) heal() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
