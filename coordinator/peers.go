package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/coordinator/peer"
	"github.com/cloister-dev/cloister/store"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Peers are found through the EndpointSlices of cfg.PeerService (label
// kubernetes.io/service-name), on the port named "peer", else the port of cfg.PeerAddr.
const (
	peerPortName = "peer"
	// maxPeers bounds the peers asked at one start.
	maxPeers = 64
)

// fetchFromPeers asks the peers for the data key, ready ones first, and returns the first key
// check accepts. Every peer's failure is logged and returned together.
func fetchFromPeers(ctx context.Context, c kubernetes.Interface, cfg Config, att *peer.Attester, check func([]byte) error, log *slog.Logger) ([]byte, store.Version, error) {
	addrs, err := peerAddrs(ctx, c, cfg.StateNamespace, cfg.PeerService, cfg.PeerAddr)
	if err != nil {
		return nil, store.Version{}, err
	}
	if cfg.PeerDialHost != "" {
		for i, a := range addrs {
			_, port, _ := net.SplitHostPort(a)
			addrs[i] = net.JoinHostPort(cfg.PeerDialHost, port)
		}
	}
	if len(addrs) == 0 {
		return nil, store.Version{}, fmt.Errorf("the EndpointSlices of Service %s/%s list no peer", cfg.StateNamespace, cfg.PeerService)
	}
	var errs []error
	for _, addr := range addrs {
		key, seen, err := peer.Fetch(ctx, addr, att)
		if err == nil {
			if err = check(key); err != nil {
				clear(key)
				err = fmt.Errorf("peer %s gave a key that does not open the shared state (not this deployment's): %w", addr, err)
			}
		}
		if err == nil {
			log.Warn("received the data key from a peer that proved it is this Coordinator", "peer", addr)
			return key, seen, nil
		}
		log.Warn("a peer did not give the data key", "peer", addr, "error", err.Error())
		errs = append(errs, err)
	}
	return nil, store.Version{}, fmt.Errorf("asked %d peers of Service %s/%s: %w", len(addrs), cfg.StateNamespace, cfg.PeerService, errors.Join(errs...))
}

// peerAddrs lists the peer addresses in the Service's EndpointSlices: ready endpoints first,
// then the rest (a replica that holds the key may be marked not ready for other reasons).
func peerAddrs(ctx context.Context, c kubernetes.Interface, ns, service, peerAddr string) ([]string, error) {
	defPort := 0
	if peerAddr != "" {
		if _, p, err := net.SplitHostPort(peerAddr); err == nil {
			defPort, _ = strconv.Atoi(p)
		}
	}
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, fmt.Errorf("list the EndpointSlices of Service %s/%s (the service account needs list on endpointslices): %w", ns, service, err)
	}
	var ready, other []string
	for _, s := range list.Items {
		port := defPort
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == peerPortName && p.Port != nil {
				port = int(*p.Port)
			}
		}
		if port <= 0 {
			return nil, fmt.Errorf("EndpointSlice %s/%s names no port %q, and no --peer-addr port to fall back on", ns, s.Name, peerPortName)
		}
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				addr := net.JoinHostPort(a, strconv.Itoa(port))
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready = append(ready, addr)
				} else {
					other = append(other, addr)
				}
			}
		}
	}
	out := slices.Compact(append(ready, other...))
	if len(out) > maxPeers {
		out = out[:maxPeers]
	}
	return out, nil
}

// peerServer returns the server of the peer key exchange, giving the store's data key.
func (c *Coordinator) peerServer(ctx context.Context) (*peer.Server, error) {
	att, err := c.tee.peerAttester(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	db := c.db
	c.mu.Unlock()
	return peer.NewServer(att, db, c.log)
}

// refuseAll closes every connection ln accepts until stop is called; it leaves ln open. A nil
// ln is allowed.
func refuseAll(ln net.Listener) (stop func()) {
	if ln == nil {
		return func() {}
	}
	type deadliner interface{ SetDeadline(time.Time) error }
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if d, ok := ln.(deadliner); ok {
				d.SetDeadline(time.Now().Add(200 * time.Millisecond))
			}
			conn, err := ln.Accept()
			if err == nil {
				conn.Close()
			}
			select {
			case <-done:
				return
			default:
			}
			if err != nil && !isTimeout(err) {
				return // closed
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		if d, ok := ln.(deadliner); ok {
			d.SetDeadline(time.Time{})
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
