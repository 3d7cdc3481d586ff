package launcher

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/gobuildid"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/cloister-dev/cloister/sgx/verify"
)

// Plan is what to run, once activation succeeded and files are in place.
type Plan struct {
	Path string   // absolute path of the program
	Argv []string // argv, including argv[0]
	Env  []string
	Dir  string // working directory
	// UID and GID are the user to switch to before exec, or -1 to keep the launcher's.
	UID, GID int
	// Groups are the user's supplementary groups (the image's /etc/group, as container
	// runtimes give them), GID included; used only when UID >= 0.
	Groups []int
	// Exec is the workload's exec: replace the launcher by the application ([Exec]) instead
	// of running it as a child ([Supervise]).
	Exec bool
	// ReloadSignal is sent to a supervised application after each renewal; 0 for none.
	ReloadSignal syscall.Signal
	// NotBefore and NotAfter bound the workload certificate of this activation.
	NotBefore, NotAfter time.Time

	// launch re-activates for renewals.
	launch *launch
	// activated is when the activation answered, by the launcher's clock.
	activated time.Time
	// noParentDeathSignal is set under Gramine, whose prctl refuses PR_SET_PDEATHSIG (and
	// whose child enclaves end with the application's process group anyway).
	noParentDeathSignal bool
}

// attestation is how this launch proves itself and whom it trusts.
type attestation struct {
	issuer     attest.Issuer
	expect     attested.Expect
	simulated  bool
	gramineDir string
	// before, if set, runs on the verified connection just before an activation; its error
	// ends the attempt (see armPreflight).
	before func(context.Context, *attested.MeshSession) error
}

// launch is what a launch keeps to activate again: its configuration, its evidence and the
// application's user.
type launch struct {
	cfg      Config
	att      *attestation
	m        *enclave.Manifest
	uid, gid int
	log      *slog.Logger
	// store holds the delivered files, for the launch's life.
	store *deliveredStore
	// early is the first connection to the Coordinator, for the first activation; nil after.
	early *earlyMesh
	// seen is the newest Coordinator state this launch has been answered from (state.go).
	seen stateSeen
}

// activation is one activation's answer with the workload's key in place.
type activation struct {
	resp                *api.ActivationResponse
	env, argv           []string
	notBefore, notAfter time.Time
	// activated is when the Coordinator answered, by the launcher's clock; NotBefore is
	// backdated for clock skew, so renewals are timed from this.
	activated time.Time
	serial    string
	reload    syscall.Signal
}

// Prepare does everything but starting the application: it checks the enclave manifest,
// attests, activates, writes the delivered files and returns the plan. An error means the
// application must not start.
func Prepare(ctx context.Context, cfg Config) (*Plan, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tee, err := chooseTEE(cfg)
	if err != nil {
		return nil, err
	}
	// The Coordinator is dialled and its quote fetched while the enclave manifest is read and
	// checked, and verified once the manifest has said whom to expect.
	early := startEarlyMesh(ctx, cfg.Coordinator)
	defer early.close()
	signed, err := readEnclaveManifest(cfg.EnclaveManifest)
	if err != nil {
		return nil, err
	}
	m := signed.Manifest
	att, err := attestSelf(ctx, cfg, tee, signed, log)
	if err != nil {
		return nil, err
	}
	uid, gid, err := resolveUser(m.User)
	if err != nil {
		return nil, err
	}
	// Memory-backed storage, emptied of what an earlier start left and checked for room, before
	// an activation is spent.
	store, plain, err := openMemory(cfg, m, !att.simulated, log)
	if err != nil {
		waitMeasured(att)
		return nil, err
	}
	defer func() {
		if plain != nil {
			plain.Close()
		}
	}()
	l := &launch{cfg: cfg, att: att, m: m, uid: uid, gid: gid, log: log, store: store, early: early}
	l.armPreflight() // where the launch will write is checked before it activates
	plan, err := l.prepare(ctx, plain)
	if err != nil {
		store.close()
		return nil, err
	}
	return plan, nil
}

// waitMeasured waits for the launcher's own measurement, perhaps never needed, which ends with
// the launch.
func waitMeasured(att *attestation) {
	if pi, ok := att.issuer.(*pendingIssuer); ok {
		<-pi.done
	}
}

// prepare activates and puts everything in place for the application: delivered files,
// protected files (into plain), Gramine's keys and the encrypted volumes.
func (l *launch) prepare(ctx context.Context, plain *os.Root) (*Plan, error) {
	m, att, log, uid, gid := l.m, l.att, l.log, l.uid, l.gid
	a, err := l.activate(ctx)
	if err != nil {
		waitMeasured(att)
		return nil, err
	}
	l.seen = seenFrom(a.resp, a.activated)
	resp := a.resp
	// Everything that can still fail without writing anything comes first.
	path, err := lookPath(a.argv[0], a.env)
	if err != nil {
		return nil, err
	}
	if err := checkProgramTrusted(m, path); err != nil {
		return nil, err
	}
	if err := checkDelivered(m, resp.Files); err != nil {
		return nil, err
	}
	if err := checkVolumeKeys(m, resp); err != nil {
		return nil, err
	}
	if err := writeFiles(l.store, resp.Files, uid, gid); err != nil {
		return nil, err
	}
	if err := unlockProtected(plain, m, resp); err != nil {
		return nil, err
	}
	if !att.simulated {
		if err := provisionGramineKeys(att.gramineDir, resp.FileKeys); err != nil {
			return nil, err
		}
	}
	if err := prepareVolumes(m, att.simulated, log); err != nil {
		return nil, err
	}
	dir := m.WorkingDir
	if dir == "" {
		dir = "/"
	}
	env := a.env
	_, imageHome := m.Env["HOME"]
	_, deployedHome := resp.Env["HOME"]
	if !imageHome && !deployedHome { // as runc sets it
		appUID := uid
		if appUID < 0 {
			appUID = os.Getuid()
		}
		env = setEnv(env, "HOME", imageUsers.home(appUID))
	}
	log.Info("activated; starting the application", "program", path, "files", len(resp.Files), "manifest_version", resp.ManifestVersion,
		"exec", resp.Exec, "certificate_not_after", a.notAfter.UTC().Format(time.RFC3339))
	return &Plan{Path: path, Argv: a.argv, Env: env, Dir: dir, UID: uid, GID: gid, Groups: imageUsers.appGroups(uid, gid),
		noParentDeathSignal: !att.simulated,
		Exec:                resp.Exec, ReloadSignal: a.reload, NotBefore: a.notBefore, NotAfter: a.notAfter, launch: l, activated: a.activated}, nil
}

// activate activates with a new key, as configured (retrying up to cfg.RetryTimeout), and
// renders the answer: the key in place of its placeholder, the application's environment and
// argv. It writes nothing.
func (l *launch) activate(ctx context.Context) (*activation, error) {
	wk, err := attested.NewWorkloadKeyDNS(l.cfg.Workload, l.cfg.DNSNames)
	if err != nil {
		return nil, err
	}
	l.log.Info("activating", "coordinator", l.cfg.Coordinator, "workload", l.cfg.Workload, "instance", l.cfg.Instance)
	early := l.early
	l.early = nil
	resp, err := activate(ctx, l.cfg, l.att, wk.CSR, l.log, early)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(wk.Key)
	if err != nil {
		return nil, err
	}
	if err := substituteKey(resp, string(keyPEM)); err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertsPEM([]byte(resp.CertificateChain))
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("coordinator sent certificate chain that does not parse (%v); expected the workload certificate first", err)
	}
	leaf := certs[0]
	reload, ok := reloadSignals[resp.ReloadSignal]
	if !ok {
		return nil, fmt.Errorf("coordinator sent reload signal %q; expected none or one of SIGHUP, SIGUSR1, SIGUSR2", resp.ReloadSignal)
	}
	argv := l.m.Argv
	if len(resp.Argv) > 0 {
		argv = resp.Argv
	}
	if len(argv) == 0 {
		return nil, errors.New("no command: the enclave manifest and the deployment manifest give no argv")
	}
	return &activation{resp: resp, env: l.m.Environ(l.cfg.HostEnv, resp.Env), argv: argv,
		notBefore: leaf.NotBefore, notAfter: leaf.NotAfter, activated: time.Now(), serial: leaf.SerialNumber.Text(16), reload: reload}, nil
}

// reloadSignals are the signals a workload may name as its reload signal (manifest.ReloadSignals).
var reloadSignals = map[string]syscall.Signal{"": 0, "SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2}

// maxEnclaveManifest bounds the enclave manifest file.
const maxEnclaveManifest = enclave.MaxSize

func readEnclaveManifest(path string) (*enclave.Signed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("enclave manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnclaveManifest+1))
	if err != nil {
		return nil, fmt.Errorf("enclave manifest %s: %w", path, err)
	}
	s, err := enclave.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("enclave manifest %s: %w", path, err)
	}
	return s, nil
}

// chooseTEE returns the configured TEE, or the one this launch runs in: Gramine if its
// attestation interface is there, else simulation if a simulated platform is configured.
func chooseTEE(cfg Config) (string, error) {
	if cfg.TEE != "" {
		return cfg.TEE, nil
	}
	switch {
	case (&attest.GramineIssuer{Dir: cfg.GramineDir}).Available():
		return TEEGramine, nil
	case cfg.SimDir != "":
		return TEESimulation, nil
	default:
		return "", fmt.Errorf("no TEE: not inside Gramine (no %s/quote) and %s is not set", attest.DefaultGramineDir, EnvSimDir)
	}
}

// attestSelf sets up the evidence of this launch in tee and the Coordinator identity it
// accepts.
func attestSelf(ctx context.Context, cfg Config, tee string, signed *enclave.Signed, log *slog.Logger) (*attestation, error) {
	gramine := &attest.GramineIssuer{Dir: cfg.GramineDir}
	m := signed.Manifest
	att := &attestation{}
	switch tee {
	case TEEGramine:
		if m.Coordinator == nil {
			return nil, errors.New("the enclave manifest names no Coordinator identity; convert the image with --coordinator-mrenclave or --coordinator-mrsigner")
		}
		att.issuer = gramine
		att.gramineDir = gramine.Dir
		if att.gramineDir == "" {
			att.gramineDir = attest.DefaultGramineDir
		}
		att.expect = attested.Expect{SGXRoot: verify.IntelRoot()}
	case TEESimulation:
		if cfg.SimDir == "" {
			return nil, fmt.Errorf("%s=%s needs %s", EnvTEE, TEESimulation, EnvSimDir)
		}
		log.Warn("SIMULATION MODE: this workload is not protected by SGX; its evidence can be forged by anyone holding the simulated platform")
		// The launcher's own hash is half the measurement. Taken from the enclave manifest's
		// record it is there at once; hashed, it goes on while the platform is loaded, the
		// trusted files are verified and the Coordinator is verified, and the first quote waits
		// for it. Nothing is quoted, so nothing is sent that depends on the measurement, before
		// it is complete.
		exe, err := measureSelf(m.Launcher)
		if err != nil {
			return nil, fmt.Errorf("refusing to start: %w", err)
		}
		pending := &pendingIssuer{done: make(chan struct{})}
		loaded := make(chan *sim.Platform, 1) // nil if the platform did not load
		go func() {
			defer close(pending.done)
			<-exe.done
			p := <-loaded
			switch {
			case exe.err != nil:
				pending.err = exe.err
				return
			case p == nil:
				pending.err = errors.New("no simulated platform")
				return
			}
			mr := enclave.SimMRENCLAVE(exe.sum, signed.Raw)
			pending.issuer = &attest.SimIssuer{Platform: p, Body: attest.SimEnclaveBody(mr, signed.MRSigner(), m.ISVProdID, m.ISVSVN)}
			attrs := []any{"mrenclave", fmt.Sprintf("%x", mr), "launcher_hash", exe.how, "took", exe.took.Round(10 * time.Microsecond)}
			if exe.why != "" {
				attrs = append(attrs, "why", exe.why)
			}
			log.Info("launcher measured", attrs...)
		}()
		p, err := sim.LoadForQuotes(cfg.SimDir) // a launcher only quotes: no collateral keys
		loaded <- p
		if err != nil {
			<-pending.done
			if uid := os.Geteuid(); uid != 0 && errors.Is(err, fs.ErrPermission) {
				return nil, fmt.Errorf("the simulated SGX platform directory %s is not readable by uid %d (the container runs as a non-root user): make it readable by that user: %w", cfg.SimDir, uid, err)
			}
			return nil, fmt.Errorf("simulated platform: %w", err)
		}
		start := time.Now()
		if err := m.VerifyFiles(ctx, "/", enclave.VerifyOptions{}); err != nil {
			<-pending.done
			if uid := os.Geteuid(); uid != 0 && errors.Is(err, fs.ErrPermission) {
				return nil, fmt.Errorf("refusing to start: %w; in simulation the launcher reads every trusted file, and uid %d cannot (the container runs as a non-root user): "+
					"run the container as root (the launcher itself switches to the image's user) or make the files readable by that user", err, uid)
			}
			return nil, fmt.Errorf("refusing to start: %w", err)
		}
		log.Info("trusted files verified", "files", len(m.Files)+len(m.ProtectedFiles), "took", time.Since(start).Round(time.Millisecond))
		if m.Launcher != nil {
			// A launcher that had to hash itself against the record is refused here, before
			// it activates, if it is not the recorded one.
			<-exe.done
			if exe.err != nil {
				return nil, fmt.Errorf("refusing to start: %w", exe.err)
			}
		}
		att.issuer = pending
		att.expect = attested.ExpectSimulated(p.Root())
		att.simulated = true
	}
	if c := m.Coordinator; c != nil {
		att.expect.MRSigner = nil
		for _, d := range c.MRENCLAVE {
			att.expect.MREnclave = append(att.expect.MREnclave, [32]byte(d))
		}
		if c.MRSIGNER != (enclave.Digest{}) {
			s := [32]byte(c.MRSIGNER)
			att.expect.MRSigner = &s
			att.expect.ISVProdID, att.expect.MinISVSVN = c.ISVProdID, c.MinISVSVN
		}
	}
	return att, nil
}

// maxReattest bounds the immediate retries of activate after the attested connection closed.
const maxReattest = 3

// activate verifies the Coordinator and activates, retrying while the Coordinator is
// unreachable or not ready, up to cfg.RetryTimeout. Refusals are final.
//
// Every attempt dials, verifies the Coordinator and activates on a new connection with a new
// quote: a quote binds the connection it travels on, and a verification only that connection.
// The first attempt takes its connection from early, when there is one.
// When that connection closes under the activation (the Coordinator was reachable a moment
// ago), the next attempt starts at once, up to maxReattest times even with no RetryTimeout;
// after that, with backoff as for an unreachable Coordinator.
func activate(ctx context.Context, cfg Config, att *attestation, csrDER []byte, log *slog.Logger, early *earlyMesh) (*api.ActivationResponse, error) {
	deadline := time.Now().Add(cfg.RetryTimeout)
	backoff := 200 * time.Millisecond
	reattested := 0
	for attempt := 1; ; attempt++ {
		resp, err := activateOnce(ctx, cfg, att, csrDER, early)
		early = nil
		if err == nil {
			return resp, nil
		}
		if pe, ok := errors.AsType[*preflightError](err); ok {
			return nil, pe // final, and no activation was made
		}
		if errors.Is(err, attested.ErrConnClosed) && reattested < maxReattest && ctx.Err() == nil {
			reattested++
			log.Warn("the connection to the coordinator closed; verifying it again on a new connection", "attempt", attempt, "reason", err.Error())
			continue
		}
		if !retryable(err) || time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("activation failed: %w", err)
		}
		log.Info("coordinator not available yet; retrying", "attempt", attempt, "in", backoff, "reason", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// activateOnce verifies the Coordinator and activates on one connection: early's, if there is
// one, else a new one.
func activateOnce(ctx context.Context, cfg Config, att *attestation, csrDER []byte, early *earlyMesh) (*api.ActivationResponse, error) {
	var s *attested.MeshSession
	if p, err := early.take(); err != nil {
		return nil, err
	} else if p != nil {
		if s, err = p.Verify(att.expect); err != nil {
			return nil, err
		}
	} else {
		var err error
		if s, err = attested.DialMesh(ctx, cfg.Coordinator, att.expect); err != nil {
			return nil, err
		}
	}
	defer s.Close()
	if att.before != nil {
		if err := att.before(ctx, s); err != nil {
			return nil, err
		}
	}
	return s.Activate(ctx, cfg.Workload, cfg.Instance, csrDER, att.issuer)
}

// retryable says whether an activation error may go away by itself: the Coordinator is not
// reachable yet or has no manifest yet, or the connection to it closed. A failed verification
// of the Coordinator, or a refusal of this workload, is final.
func retryable(err error) bool {
	if e, ok := errors.AsType[*attested.APIError](err); ok {
		return e.Temporary()
	}
	_, dial := errors.AsType[*attested.DialError](err)
	return dial || errors.Is(err, attested.ErrConnClosed)
}

// substituteKey puts the workload's private key wherever a template used it.
func substituteKey(resp *api.ActivationResponse, keyPEM string) error {
	ph := resp.KeyPlaceholder
	if !strings.HasPrefix(ph, "cloister-workload-key-") || len(ph) < 40 {
		return fmt.Errorf("coordinator sent key placeholder %q; expected cloister-workload-key-<random hex>", ph)
	}
	for p, b := range resp.Files {
		if strings.Contains(string(b), ph) {
			resp.Files[p] = []byte(strings.ReplaceAll(string(b), ph, keyPEM))
		}
	}
	for k, v := range resp.Env {
		resp.Env[k] = strings.ReplaceAll(v, ph, keyPEM)
	}
	for i, a := range resp.Argv {
		resp.Argv[i] = strings.ReplaceAll(a, ph, keyPEM)
	}
	return nil
}

// lookPath resolves the program like execvp, with PATH from the application's environment.
func lookPath(prog string, env []string) (string, error) {
	if prog == "" {
		return "", errors.New("argv[0] is empty")
	}
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found in PATH %s", prog, path)
}

// checkProgramTrusted refuses to run a program that is not a trusted file of m: PATH comes from
// the environment, which the host may set, so a bare argv[0] could otherwise resolve to a file
// planted ahead of the measured one. The program must be a listed path, or resolve (through
// symbolic links) to the same file as one; the trusted-file check has verified the content at
// every listed path.
func checkProgramTrusted(m *enclave.Manifest, path string) error {
	listed := func(p string) bool {
		return slices.ContainsFunc(m.Files, func(f enclave.File) bool { return f.Path == p })
	}
	if listed(path) {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err == nil && listed(real) {
		return nil
	}
	if fi, err := os.Stat(real); err == nil {
		// A listed path that links to the same file (/bin/sh for /usr/bin/dash): only files of
		// the same size can be it, so few are resolved.
		for _, f := range m.Files {
			if f.Size != fi.Size() {
				continue
			}
			if r, err := filepath.EvalSymlinks(f.Path); err == nil && r == real {
				return nil
			}
		}
	}
	return fmt.Errorf("program %s is not a trusted file of the enclave manifest; refusing to run unmeasured code (is PATH set to a directory the manifest does not measure?)", path)
}

// earlyMesh is the first connection to the Coordinator, dialled and its quote fetched while the
// launch checks the enclave manifest, the trusted files and memory; the quote is verified (and
// anything sent) only once the launch knows whom to expect. Nothing is activated before those
// checks pass: an unverified connection that fetched a quote costs the Coordinator nothing it
// does not give anyone.
type earlyMesh struct {
	cancel context.CancelFunc // ends a dial still under way when the launch ends first
	done   chan struct{}
	p      *attested.PendingMesh // set, or err, before done is closed; nil once taken
	err    error
	at     time.Time // when it was fetched
}

// earlyMaxAge is how long an early connection is used after its quote was fetched: after long
// local checks (a large image's trusted files) a new connection gets a newer shared quote, and
// the Coordinator may have closed the idle one.
const earlyMaxAge = 20 * time.Second

func startEarlyMesh(ctx context.Context, addr string) *earlyMesh {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyMesh{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		e.p, e.err = attested.DialMeshPending(ctx, addr)
		e.at = time.Now()
	}()
	return e
}

// take waits for the connection and hands it over: nil, nil if there is none (e is nil, it was
// taken, or it is older than earlyMaxAge), or the error of dialling it.
func (e *earlyMesh) take() (*attested.PendingMesh, error) {
	if e == nil {
		return nil, nil
	}
	<-e.done
	p, err := e.p, e.err
	e.p, e.err = nil, nil
	if p != nil && time.Since(e.at) > earlyMaxAge {
		p.Close()
		return nil, nil
	}
	return p, err
}

// close ends the dial if it is still under way (a launch that failed its own checks does not
// wait for an unreachable Coordinator), waits for it, and closes the connection unless it was
// taken; a nil e has none.
func (e *earlyMesh) close() {
	if e == nil {
		return
	}
	e.cancel()
	if p, _ := e.take(); p != nil {
		p.Close()
	}
}

// pendingIssuer quotes as issuer once done is closed, or fails with err.
type pendingIssuer struct {
	done   chan struct{}
	issuer attest.Issuer // set before done is closed, unless err is
	err    error
}

// Quote implements [attest.Issuer].
func (p *pendingIssuer) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
	}
	if p.err != nil {
		return nil, p.err
	}
	return p.issuer.Quote(ctx, reportData)
}

// exeHash is the launcher's own hash, the half of its simulated measurement that
// [measureSelf] takes from the enclave manifest's record or has [hashExecutable] compute in its
// own goroutine. Its other fields are read only after done is closed.
type exeHash struct {
	done chan struct{}
	sum  [32]byte // set, with err and took, before done is closed
	err  error
	took time.Duration
	how  string // "recorded" or "computed"
	why  string // why it was computed
}

// measureSelf starts measuring the running launcher against rec, the enclave manifest's record
// of the launcher binary (nil if it has none). A launcher of the recorded size and Go build ID
// takes the recorded hash at once, having read a few kilobytes of its executable; see
// [enclave.Launcher] for why that suffices in simulation. A launcher of another size or build
// ID is not the recorded one and is refused at once. Otherwise (no record, no recorded build
// ID, or its own unreadable) it hashes its executable, which must then have the recorded hash
// if there is a record; that error is h.err, once h.done is closed.
func measureSelf(rec *enclave.Launcher) (*exeHash, error) {
	h := &exeHash{done: make(chan struct{}), how: "computed", why: "the enclave manifest records no launcher"}
	start := time.Now()
	if rec != nil {
		size, id, err := executableIdentity()
		switch {
		case err != nil:
			h.why = fmt.Sprintf("reading its own build ID: %v", err)
		case size != rec.Size || (rec.GoBuildID != "" && id != rec.GoBuildID):
			return nil, notRecordedLauncher(rec, fmt.Sprintf("%d bytes with %s", size, buildIDText(id)))
		case rec.GoBuildID == "":
			h.why = "the record has no Go build ID"
		default:
			h.sum, h.how, h.why, h.took = rec.SHA256, "recorded", "", time.Since(start)
			close(h.done)
			return h, nil
		}
	}
	go func() {
		defer close(h.done)
		h.sum, h.err = hashExecutable()
		h.took = time.Since(start)
		if h.err == nil && rec != nil && h.sum != rec.SHA256 {
			h.err = notRecordedLauncher(rec, fmt.Sprintf("SHA-256 %x", h.sum))
		}
	}()
	return h, nil
}

// notRecordedLauncher is the error of a launcher that is not the one rec records; found says
// what it is.
func notRecordedLauncher(rec *enclave.Launcher, found string) error {
	return fmt.Errorf("this launcher is not the one the enclave manifest was made for: expected %d bytes with %s and SHA-256 %x, found %s; "+
		"convert the image again with this launcher (or sign the host manifest again), or run the launcher it was made with",
		rec.Size, buildIDText(rec.GoBuildID), rec.SHA256[:], found)
}

// buildIDText names a Go build ID in an error.
func buildIDText(id string) string {
	if id == "" {
		return "no Go build ID"
	}
	return fmt.Sprintf("Go build ID %q", id)
}

// executableIdentity returns the size and Go build ID of the running launcher's executable,
// the file the kernel runs (/proc/self/exe), as [hashExecutable] would hash it.
func executableIdentity() (size int64, buildID string, err error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	id, err := gobuildid.Read(f)
	return fi.Size(), id, err
}

// hashExecutable returns the SHA-256 of the running launcher's executable, the file the
// kernel runs (/proc/self/exe), not whatever is at its path now: the same bytes that
// attest.ExecutableSHA256 hashes. SHA-256 itself is most of it (3.7 ms for the 6.3 MB
// stripped launcher at 1.7 GB/s with SHA instructions), which is why [measureSelf] uses it only
// when the enclave manifest records no launcher, or records it without a Go build ID, or the
// launcher cannot read its own build ID.
//
// It hashes the file mapped read-only with MAP_POPULATE, which maps every page in one system
// call, rather than copying it out with read: cloister-launch started 150 times x 4,
// alternating with the 32 KiB read loop, took 1.2-2.1 ms less CPU per start (median) and its
// fastest start was 0.5-1.5 ms faster; a plain mapping, faulting its pages in, saved 0.3 ms
// less than MAP_POPULATE. The bytes are the page cache's, as read would copy them. A running
// executable normally cannot be written (ETXTBSY); were it truncated under the mapping, the
// hash would fault and the launch end, never measure other bytes. Where the file cannot be
// mapped it is read in 32 KiB pieces.
func hashExecutable() (sum [32]byte, err error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return attest.ExecutableSHA256() // no /proc: by path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, fmt.Errorf("hash own executable: %w", err)
	}
	if n := fi.Size(); n > 0 && n == int64(int(n)) {
		if b, err := syscall.Mmap(int(f.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_POPULATE); err == nil {
			sum = sha256.Sum256(b)
			syscall.Munmap(b)
			return sum, nil
		}
	}
	h := sha256.New()
	// Hidden behind a plain Reader, the file cannot take another path (WriteTo).
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 32<<10)); err != nil {
		return sum, fmt.Errorf("hash own executable: %w", err)
	}
	h.Sum(sum[:0])
	return sum, nil
}
