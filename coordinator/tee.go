package coordinator

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/coordinator/peer"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/sgx/pcs"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// tee is what the Coordinator proves itself and seals with: SGX through Gramine, or a
// simulated platform.
type tee struct {
	issuer     attest.Issuer
	verifier   *attest.Verifier
	sealer     seal.Sealer
	simulation bool

	// peerMu guards peer, the attester of the peer key exchange, made once it can be
	// (peerAttester).
	peerMu sync.Mutex
	peer   *peer.Attester
}

// newTEE sets up the simulated platform (cfg.Simulation) or real SGX inside Gramine.
func newTEE(cfg *Config, log *slog.Logger) (*tee, error) {
	if cfg.Simulation == "" {
		g := &attest.GramineIssuer{}
		if !g.Available() {
			return nil, fmt.Errorf("no SGX: %s/quote does not exist, so this is not a Gramine SGX enclave; run the Coordinator inside Gramine, or pass --simulation DIR for a simulated platform", attest.DefaultGramineDir)
		}
		client, err := pcs.NewClient(pcs.ClientConfig{BaseURL: cfg.PCCSURL, APIKey: cfg.PCSAPIKey})
		if err != nil {
			return nil, fmt.Errorf("PCCS URL: %w", err)
		}
		provider, err := pcs.NewProvider(pcs.ProviderConfig{Client: client, Dir: filepath.Join(cfg.DataDir, "collateral")}, pcs.WithLogger(log))
		if err != nil {
			return nil, err
		}
		sealer, err := seal.NewGramine("")
		if err != nil {
			return nil, err
		}
		return &tee{issuer: g, verifier: attest.NewVerifier(verify.New(verify.IntelRoot()), provider), sealer: sealer}, nil
	}
	log.Warn("SIMULATION MODE: this Coordinator is NOT protected by SGX; its evidence can be forged by anyone holding the simulated platform", "platform", cfg.Simulation)
	platform, err := sim.Load(cfg.Simulation)
	if err != nil {
		return nil, fmt.Errorf("simulated platform: %w", err)
	}
	col, err := verify.LoadCollateral(platform.CollateralDir())
	if err != nil {
		return nil, fmt.Errorf("simulated platform: %w", err)
	}
	exe, err := attest.ExecutableSHA256()
	if err != nil {
		return nil, err
	}
	sealer, err := seal.NewSimulated(filepath.Join(cfg.DataDir, "simulation-seal.key"))
	if err != nil {
		return nil, err
	}
	return &tee{
		issuer: &attest.SimIssuer{
			Platform: platform,
			Body: attest.SimEnclaveBody(enclave.SimMeasurement(enclave.SimCoordinatorTag, exe[:]),
				attest.SimCoordinatorSigner, attest.CoordinatorProdID, attest.CoordinatorSVN),
		},
		verifier:   attest.NewVerifier(verify.New(platform.Root()), attest.StaticCollateral{C: col}),
		sealer:     sealer,
		simulation: true,
	}, nil
}
