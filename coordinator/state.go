package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cloister-dev/cloister/seal"
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

// The client's rate limit: client-go's default (5 requests/s) would cap activations.
const (
	kubeQPS   = 1000
	kubeBurst = 2000
)

func (cfg *Config) validateState() error {
	switch cfg.State {
	case "", StateEmbedded:
		if cfg.StateNamespace != "" || cfg.StateName != "" || cfg.Kubeconfig != "" {
			return errors.New("state: a namespace, name or kubeconfig is only for the kubernetes state backend")
		}
		return nil
	case StateKubernetes:
		if cfg.StateNamespace == "" || cfg.StateName == "" {
			return errors.New("state: the kubernetes backend needs a namespace and a name for the state's Secret")
		}
		return nil
	}
	return fmt.Errorf("state backend %q: expected %q or %q", cfg.State, StateEmbedded, StateKubernetes)
}

// openState opens the state backend cfg names.
func openState(ctx context.Context, cfg Config, s seal.Sealer, log *slog.Logger) (*store.DB, error) {
	if cfg.State != StateKubernetes {
		return store.Open(cfg.DataDir, s, store.Options{Logger: log})
	}
	var (
		rc  *rest.Config
		err error
	)
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes state: client configuration: %w", err)
	}
	rc.QPS, rc.Burst = kubeQPS, kubeBurst
	rc.UserAgent = "cloister-coordinator"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state: %w", err)
	}
	r, err := kubestate.New(client, kubestate.Options{Namespace: cfg.StateNamespace, Name: cfg.StateName, Logger: log})
	if err != nil {
		return nil, err
	}
	db, err := store.OpenRemote(ctx, cfg.DataDir, s, r, store.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("kubernetes state (Secret %s/%s): %w", cfg.StateNamespace, cfg.StateName, err)
	}
	return db, nil
}
