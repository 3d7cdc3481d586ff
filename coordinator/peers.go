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
	// freshnessPeers is how many peers that give the key are asked for their newest state
	// version; the highest is kept. One peer that is behind (or was just restarted) must not
	// decide alone whether the state was replayed.
	freshnessPeers = 3
	// fetchTimeout bounds all the asking at one start, peerTimeout one peer: peers listed by an
	// attacker-controlled API cannot hold a start for long.
	fetchTimeout = 2 * time.Minute
	peerTimeout  = 10 * time.Second
)

// fetchFromPeers asks the peers for the data key, ready ones first, and returns a key check
// accepts with the highest version seen among up to freshnessPeers peers that gave it. Every
// peer's failure is logged and returned together. A failure to list the peers matches
// store.ErrUnavailable: it says nothing about the key.
func fetchFromPeers(ctx context.Context, c kubernetes.Interface, cfg Config, att *peer.Attester, check func([]byte) error, log *slog.Logger) ([]byte, store.Version, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	addrs, err := peerAddrs(ctx, c, cfg.StateNamespace, cfg.PeerService, cfg.PeerAddr, log)
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if cfg.PeerDialHost != "" {
		for i, a := range addrs {
			_, port, _ := net.SplitHostPort(a)
			addrs[i] = net.JoinHostPort(cfg.PeerDialHost, port)
		}
		addrs = dedupe(addrs)
	}
	if len(addrs) == 0 {
		return nil, store.Version{}, fmt.Errorf("the EndpointSlices of Service %s/%s list no peer", cfg.StateNamespace, cfg.PeerService)
	}
	var (
		errs  []error
		key   []byte
		seen  store.Version
		gave  int
		asked int
	)
	for _, addr := range addrs {
		if gave == freshnessPeers || ctx.Err() != nil {
			break
		}
		asked++
		pctx, pcancel := context.WithTimeout(ctx, peerTimeout)
		k, s, err := peer.Fetch(pctx, addr, att)
		pcancel()
		if err == nil {
			if err = check(k); err != nil {
				clear(k)
				err = fmt.Errorf("peer %s gave a key that does not open the shared state (not this deployment's): %w", addr, err)
			}
		}
		if err != nil {
			log.Warn("a peer did not give the data key", "peer", addr, "error", err.Error())
			errs = append(errs, err)
			continue
		}
		log.Warn("received the data key from a peer that proved it is this Coordinator", "peer", addr, "peer_seen_version", s.N)
		gave++
		if key == nil {
			key = k
		} else {
			clear(k)
		}
		if s.N > seen.N {
			seen = s
		}
	}
	if key != nil {
		return key, seen, nil
	}
	if n := len(errs); n > maxPeerErrors { // each is logged above; the error stays short
		errs = append(errs[:maxPeerErrors], fmt.Errorf("and %d more", n-maxPeerErrors))
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("stopped after %d of %d peers: %w", asked, len(addrs), err))
	}
	return nil, store.Version{}, fmt.Errorf("asked %d peers of Service %s/%s: %w", asked, cfg.StateNamespace, cfg.PeerService, errors.Join(errs...))
}

// maxPeerErrors bounds the peers' errors fetchFromPeers returns; each is up to a few KiB.
const maxPeerErrors = 4

// peerAddrs lists the peer addresses in the Service's EndpointSlices: ready endpoints first,
// then the rest (a replica that holds the key may be marked not ready for other reasons), each
// once. A slice with no usable port is skipped with a warning.
func peerAddrs(ctx context.Context, c kubernetes.Interface, ns, service, peerAddr string, log *slog.Logger) ([]string, error) {
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
		if port <= 0 || port > 65535 {
			log.Warn("skipping an EndpointSlice with no usable peer port", "endpointslice", ns+"/"+s.Name,
				"expected", fmt.Sprintf("a port named %q, or --peer-addr's port", peerPortName))
			continue
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
	out := dedupe(append(ready, other...))
	if len(out) > maxPeers {
		out = out[:maxPeers]
	}
	return out, nil
}

// dedupe keeps the first of each address, in order.
func dedupe(addrs []string) []string {
	seen := make(map[string]bool, len(addrs))
	return slices.DeleteFunc(addrs, func(a string) bool {
		if seen[a] {
			return true
		}
		seen[a] = true
		return false
	})
}

// peerServer returns the server of the peer key exchange, giving the store's data key.
func (c *Coordinator) peerServer(ctx context.Context) (*peer.Server, error) {
	att, err := c.tee.peerAttester(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer key exchange: %w; the Coordinator stops so that it is restarted and tries again", err)
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
