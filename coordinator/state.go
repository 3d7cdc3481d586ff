package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/cloister-dev/cloister/coordinator/peer"
	"github.com/cloister-dev/cloister/store"
	"github.com/cloister-dev/cloister/store/kubestate"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// State backends (Config.State).
const (
	// StateEmbedded keeps the state in DataDir/state.db: one Coordinator process.
	StateEmbedded = "embedded"
	// StateKubernetes keeps the state in Kubernetes Secrets shared by every replica; DataDir
	// keeps this replica's sealed data key and the newest state version it has seen.
	StateKubernetes = "kubernetes"
)

// sweepInterval is how often a replica looks for shard Secrets no manifest names.
const sweepInterval = 15 * time.Minute

// The client's rate limit: client-go's default (5 requests/s) would cap activations.
const (
	kubeQPS   = 1000
	kubeBurst = 2000
)

func (cfg *Config) validateState() error {
	switch cfg.State {
	case "", StateEmbedded:
		if cfg.StateNamespace != "" || cfg.StateName != "" || cfg.Kubeconfig != "" || cfg.PeerAddr != "" || cfg.PeerService != "" || cfg.PeerDialHost != "" {
			return errors.New("state: a namespace, name, kubeconfig, peer address or peer service is only for the kubernetes state backend")
		}
		return nil
	case StateKubernetes:
		if cfg.StateNamespace == "" || cfg.StateName == "" {
			return errors.New("state: the kubernetes backend needs a namespace and a name for the state's Secret")
		}
		if cfg.PeerAddr != "" {
			if _, _, err := net.SplitHostPort(cfg.PeerAddr); err != nil {
				return fmt.Errorf("peer address %q: expected HOST:PORT or :PORT: %w", cfg.PeerAddr, err)
			}
		}
		return nil
	}
	return fmt.Errorf("state backend %q: expected %q or %q", cfg.State, StateEmbedded, StateKubernetes)
}

// sharedState is what a Coordinator on the kubernetes backend keeps besides its store: the
// Remote and key shelf (a recovery reopens the state through them) and the client.
type sharedState struct {
	client kubernetes.Interface
	remote *kubestate.Remote
	keys   *kubestate.Keys
}

// openState opens the state backend cfg names. On the kubernetes backend, a replica whose
// seal key has no copy of the data key asks the peers of cfg.PeerService for it; if none gives
// it, the error matches store.ErrNoKey and shared is set, for a recovery.
func openState(ctx context.Context, cfg Config, t *tee, log *slog.Logger) (db *store.DB, shared *sharedState, err error) {
	if cfg.State != StateKubernetes {
		db, err = store.Open(cfg.DataDir, t.sealer, store.Options{Logger: log})
		return db, nil, err
	}
	var rc *rest.Config
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes state: client configuration: %w", err)
	}
	rc.QPS, rc.Burst = kubeQPS, kubeBurst
	rc.UserAgent = "cloister-coordinator"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes state: %w", err)
	}
	r, err := kubestate.New(client, kubestate.Options{Namespace: cfg.StateNamespace, Name: cfg.StateName, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	shared = &sharedState{client: client, remote: r, keys: r.Keys()}
	db, err = shared.open(ctx, cfg, t, log)
	if err != nil {
		return nil, shared, err
	}
	return db, shared, nil
}

// open opens the shared state, asking the peers of cfg.PeerService for the data key if this
// replica's seal key has no copy.
func (sh *sharedState) open(ctx context.Context, cfg Config, t *tee, log *slog.Logger) (*store.DB, error) {
	opts := store.Options{Logger: log, Keys: sh.keys}
	if cfg.PeerService != "" {
		opts.FetchKey = func(ctx context.Context, check func([]byte) error) ([]byte, store.Version, error) {
			att, err := t.peerAttester(ctx)
			if err != nil {
				// The hardware or the collateral service did not answer: nothing is known
				// about the key, so this is no reason for recovery mode.
				return nil, store.Version{}, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
			}
			return fetchFromPeers(ctx, sh.client, cfg, att, check, log)
		}
	}
	db, err := store.OpenRemote(ctx, cfg.DataDir, t.sealer, sh.remote, opts)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state (Secret %s/%s): %w", cfg.StateNamespace, cfg.StateName, err)
	}
	return db, nil
}

// peerAttester returns the attester of the peer key exchange, asking the hardware what this
// Coordinator is the first time it answers. A failure is not kept: the quote or the collateral
// service may answer the next time.
func (t *tee) peerAttester(ctx context.Context) (*peer.Attester, error) {
	t.peerMu.Lock()
	defer t.peerMu.Unlock()
	if t.peer != nil {
		return t.peer, nil
	}
	id, err := peer.SelfIdentity(ctx, t.issuer, t.verifier)
	if err != nil {
		return nil, err
	}
	t.peer = &peer.Attester{Issuer: t.issuer, Verifier: t.verifier, Self: id, Simulation: t.simulation}
	return t.peer, nil
}
