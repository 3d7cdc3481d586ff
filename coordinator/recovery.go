package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloister-dev/cloister/coordinator/core"
	"github.com/cloister-dev/cloister/coordinator/server"
	"github.com/cloister-dev/cloister/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Recovery mode: the store's data key does not unseal under this CPU's seal key (the state was
// moved, or the seal key changed), so the Coordinator serves only its status and the recovery
// route (see core.Recovery) until k recovery key holders have submitted their shares. Then it
// reopens the store under the rebuilt key, records the recovery in the audit log, seals the key
// under its own seal key, and serves normally on the same listeners, without a restart.
// Connections that arrive during the switch wait in the listen queue.

// startRecovery sets c up in recovery mode after store.Open failed with openErr (ErrUnseal), or
// store.OpenRemote with ErrNoKey (a shared state whose data key no replica could give).
func (c *Coordinator) startRecovery(ctx context.Context, cfg Config, t *tee, openErr error) error {
	var (
		record []byte
		reason string
		err    error
	)
	if c.shared != nil {
		// Every replica shares the record, on the key shelf: a replica on a new CPU has no
		// data-key.json of its own to find it in.
		var copies store.KeyCopies
		if copies, err = c.shared.keys.LoadKeys(ctx); err == nil {
			record = copies.Recovery
		}
		reason = sharedRecoveryReason(cfg, t)
	} else {
		record, err = store.ReadRecovery(cfg.DataDir)
		reason = fmt.Sprintf("sealed state cannot be unsealed with this CPU's seal key (%s sealer): it was sealed on another CPU, by another enclave signer or under another simulated seal key", t.sealer.Kind())
	}
	if err != nil {
		return fmt.Errorf("recovery mode: read the recovery record: %w", err)
	}
	c.rec, err = core.NewRecovery(core.RecoveryConfig{
		Record: record, Reason: reason, Issuer: t.issuer, Verifier: t.verifier, Simulation: t.simulation,
		DNSNames: cfg.DNSNames, IPAddresses: cfg.IPAddresses,
		Complete: func(ctx context.Context, key []byte, r core.RecoveryReport) error {
			if err := c.completeRecovery(ctx, cfg, t, key, r); err != nil {
				return err
			}
			// Before the holder hears that the recovery is done: whoever connects next must
			// reach the recovered state.
			c.holdRecoveryViews()
			return nil
		},
	}, core.WithLogger(c.log))
	if err != nil {
		return err
	}
	if !c.rec.Possible() {
		// Fail closed: nothing can open the state, so there is nothing to serve.
		return fmt.Errorf("open state in %s: %w; %s", cfg.DataDir, openErr, strings.TrimPrefix(c.rec.Status().Message, "SIMULATION MODE: not secure. "))
	}
	c.rsrv = server.NewRecovery(c.rec, server.WithLogger(c.log))
	st := c.rec.Status().Recovery
	c.log.Warn("RECOVERY MODE: the state cannot be unsealed; waiting for the recovery key holders' shares (`cloister recover`)",
		"reason", reason, "threshold", st.Threshold, "holders", st.Holders, "generation", st.Generation, "error", openErr.Error())
	return nil
}

// completeRecovery opens the store under the rebuilt key (which must authenticate all of it),
// starts the core on it, records the recovery, and only then seals the key under this CPU's
// seal key: a crash before the reseal leaves a Coordinator that needs recovery again, never one
// recovered without a record of it.
func (c *Coordinator) completeRecovery(ctx context.Context, cfg Config, t *tee, key []byte, r core.RecoveryReport) (err error) {
	c.recoverMu.Lock()
	defer c.recoverMu.Unlock()
	if c.Core() != nil {
		return errors.New("a peer gave the data key meanwhile: this Coordinator serves the state already, and needs no recovery")
	}
	var db *store.DB
	if c.shared != nil {
		db, err = store.RecoverRemote(ctx, cfg.DataDir, t.sealer, c.shared.remote, key, store.Options{Logger: c.log, Keys: c.shared.keys})
	} else {
		db, err = store.Recover(cfg.DataDir, t.sealer, key, store.Options{Logger: c.log})
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	// The core's metrics reach the registry only once the recovery is done: a failed attempt
	// must not leave them registered, or the holders' retry could not start a core again.
	var pending pendingRegisterer
	cr, err := core.New(ctx, core.Config{
		Store: db, Verifier: t.verifier, Issuer: t.issuer, Simulation: t.simulation,
		DNSNames: cfg.DNSNames, IPAddresses: cfg.IPAddresses,
	}, core.WithLogger(c.log), core.WithRegisterer(&pending), core.WithRecoveredRecord(r.Record))
	if err != nil {
		// WithRecoveredRecord: the record came from the host's disk, and only the recovered
		// state says who may recover it; a record that is not its split is refused here,
		// before anything is written to the state.
		return err
	}
	if err := cr.RecordRecovery(ctx, r); err != nil {
		return fmt.Errorf("audit log: record the recovery: %w", err)
	}
	if err := resealRecovered(db); err != nil {
		return err
	}
	if err := pending.registerOn(c.reg); err != nil {
		return fmt.Errorf("register the recovered core's metrics: %w", err)
	}
	c.mu.Lock()
	c.db, c.core = db, cr
	c.srv = server.New(cr, server.WithLogger(c.log), server.WithRegisterer(c.reg))
	c.mu.Unlock()
	return nil
}

// pendingRegisterer keeps the collectors registered with it until registerOn.
type pendingRegisterer struct{ cs []prometheus.Collector }

func (p *pendingRegisterer) Register(c prometheus.Collector) error {
	p.cs = append(p.cs, c)
	return nil
}

func (p *pendingRegisterer) MustRegister(cs ...prometheus.Collector) { p.cs = append(p.cs, cs...) }

func (p *pendingRegisterer) Unregister(c prometheus.Collector) bool {
	n := len(p.cs)
	p.cs = slices.DeleteFunc(p.cs, func(x prometheus.Collector) bool { return x == c })
	return len(p.cs) < n
}

func (p *pendingRegisterer) registerOn(reg prometheus.Registerer) error {
	for _, c := range p.cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// resealRecovered seals the recovered key; a variable so that a test can fail it after the
// recovery entry committed (the window a crash there leaves).
var resealRecovered = (*store.DB).Reseal

// peerRetryInterval is how often a replica of a shared state in recovery mode asks the peers
// for the data key again: they may have been restarting, or a replica that holds the key may
// have come back on its CPU.
const peerRetryInterval = 30 * time.Second

// runRecovery serves recovery mode on views of the client and workload listeners until the
// recovery completes, or a peer gives the data key (true), or ctx ends (false).
func (c *Coordinator) runRecovery(ctx context.Context) (bool, error) {
	// The views are known before anything can hold them.
	client, mesh := c.handoffs[0].view(), c.handoffs[1].view()
	c.mu.Lock()
	c.recViews = []*view{client, mesh}
	c.mu.Unlock()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		select {
		case <-c.rec.Done():
			stop()
		case <-rctx.Done():
		}
	})
	gave := make(chan struct{})
	if c.shared != nil && c.cfg.PeerService != "" {
		wg.Go(func() {
			if c.askPeersAgain(rctx, peerRetryInterval) {
				close(gave)
				stop()
			}
		})
	}
	err := c.rsrv.Serve(rctx, client, mesh, nil, nil)
	stop()
	wg.Wait()
	select {
	case <-c.rec.Done():
		c.log.Info("recovery complete; serving the recovered state on the same listeners")
		return err == nil, err
	case <-gave:
		c.log.Warn("a peer gave the data key: leaving recovery mode without the key holders; serving the state on the same listeners")
		return err == nil, err
	default:
		return false, err
	}
}

// holdRecoveryViews makes the recovery server take no more connections: they wait for the
// server of the recovered state.
func (c *Coordinator) holdRecoveryViews() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.recViews {
		v.hold()
	}
}

// peerRetryBound bounds one attempt of recovery mode to get the key from the peers.
const peerRetryBound = 15 * time.Second

// askPeersAgain opens the shared state again every interval, asking the peers for the data
// key, until it opens (true) or ctx ends (false).
func (c *Coordinator) askPeersAgain(ctx context.Context, interval time.Duration) bool {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if c.openFromPeers(ctx) {
			return true
		}
	}
}

// openFromPeers opens the shared state with a key a peer gives and starts the core on it, as a
// recovery by the key holders would (but with nothing to record: the key never left the
// replicas). It returns false, after logging why, if no peer gave it or the holders recovered
// the state first.
//
// It holds recoverMu while it asks, so a key holders' recovery that completes meanwhile waits
// for it: the asking is bounded by peerRetryBound, well under the 30 s in which the holder's
// answer must be written. While a holders' recovery runs, this attempt is skipped.
func (c *Coordinator) openFromPeers(ctx context.Context) bool {
	if !c.recoverMu.TryLock() {
		return false
	}
	defer c.recoverMu.Unlock()
	if c.Core() != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, peerRetryBound)
	defer cancel()
	db, err := c.shared.open(ctx, c.cfg, c.tee, c.log)
	if err != nil {
		c.log.Warn("recovery mode: the peers were asked for the data key again; still none gave it", "error", err.Error())
		return false
	}
	var pending pendingRegisterer
	cr, err := core.New(ctx, core.Config{
		Store: db, Verifier: c.tee.verifier, Issuer: c.tee.issuer, Simulation: c.tee.simulation,
		DNSNames: c.cfg.DNSNames, IPAddresses: c.cfg.IPAddresses,
	}, core.WithLogger(c.log), core.WithRegisterer(&pending))
	if err == nil {
		err = pending.registerOn(c.reg)
	}
	if err != nil {
		db.Close()
		c.log.Error("recovery mode: a peer gave the data key, but the state does not start", "error", err.Error())
		return false
	}
	c.mu.Lock()
	c.db, c.core = db, cr
	c.srv = server.New(cr, server.WithLogger(c.log), server.WithRegisterer(c.reg))
	c.mu.Unlock()
	c.holdRecoveryViews()
	return true
}

// sharedRecoveryReason says, in one line, why a replica of a shared state waits for recovery.
// The peers' answers are in the log (startRecovery logs openErr): the reason also goes into the
// audit log, which takes short printable text only.
func sharedRecoveryReason(cfg Config, t *tee) string {
	asked := "no peer is configured (--peer-service)"
	if cfg.PeerService != "" {
		asked = fmt.Sprintf("no running replica of Service %s/%s gave it", cfg.StateNamespace, cfg.PeerService)
	}
	return fmt.Sprintf("waiting for recovery: no copy of the shared state's data key is sealed to this CPU's seal key (%s sealer), and %s: "+
		"every replica that held the key is gone or runs on another CPU. A replica that holds it again (restarted on its CPU) can give it after this one restarts; "+
		"otherwise the recovery key holders must recover the state", t.sealer.Kind(), asked)
}
