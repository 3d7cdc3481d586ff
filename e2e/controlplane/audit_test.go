package controlplane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// auditWorld is a Coordinator with a manifest whose user "admin" may update it and write the
// user-defined secrets s0…s4, and whose workload "app" (max 1000 activations) and "free" (no
// limit) run the enclave of auditBody.
type auditWorld struct {
	e     *env
	co    *e2etest.Coordinator
	admin *e2etest.User
	root  *client.Verified
	p     *sim.Platform
	// version counts manifests set; manifest is the last one set.
	version  int
	manifest []byte

	mu      sync.Mutex // guards secrets
	secrets []string   // the values written

	fixedOnce sync.Once
	fixed     [][]byte // manifests for TestAuditCrash
}

var auditMR = sha256.Sum256([]byte("audit test enclave"))

func auditBody() attest.SimIssuer {
	return attest.SimIssuer{Body: attest.SimEnclaveBody(auditMR, [32]byte{1}, 1, 1)}
}

// newManifest returns a manifest with extraUsers users besides admin.
func (w *auditWorld) newManifest(t *testing.T, extraUsers int) []byte {
	t.Helper()
	var extra []*e2etest.User
	for i := range extraUsers {
		extra = append(extra, w.e.NewUser(t, fmt.Sprintf("user%d", i)))
	}
	return w.manifestWith(extra, 0)
}

// manifestWith returns the manifest with users extra besides admin, in variant n (an
// environment value of workload free).
func (w *auditWorld) manifestWith(extra []*e2etest.User, n int) []byte {
	users := map[string]any{"admin": map[string]any{"certificate": w.admin.CertPEM, "roles": []string{"updater", "writer"}}}
	for _, u := range extra {
		users[u.Name] = map[string]any{"certificate": u.CertPEM}
	}
	secrets := map[string]any{}
	names := []string{}
	for i := range 5 {
		n := fmt.Sprintf("s%d", i)
		secrets[n] = map[string]any{"type": "user-defined", "max_size": 64}
		names = append(names, n)
	}
	m := map[string]any{
		"packages": map[string]any{"pkg": map[string]any{"mrenclave": hex.EncodeToString(auditMR[:])}},
		"workloads": map[string]any{
			"app":  map[string]any{"package": "pkg", "max_activations": 1000},
			"free": map[string]any{"package": "pkg", "env": map[string]string{"VARIANT": fmt.Sprint(n)}},
		},
		"secrets": secrets,
		"users":   users,
		"roles": map[string]any{
			"updater": map[string]any{"resource": "manifest", "actions": []string{"update"}},
			"writer":  map[string]any{"resource": "secrets", "names": names, "actions": []string{"write"}},
		},
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	e := newEnv(t)
	w := &auditWorld{e: e, p: e.NewPlatform(t, "platform"), admin: e.NewUser(t, "admin")}
	w.co = e.StartCoordinator(t, "coordinator", w.p, e.Path("data"), nil)
	e.MustCLI(t, "verify", "--coordinator", w.co.Addrs.Client, "--simulation", w.p.Dir())
	v, err := client.Verify(t.Context(), w.co.Addrs.Client, w.co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	w.root = v
	e2etest.WriteFile(t, e.Path("root.pem"), pki.EncodeCertPEM(v.Root), 0o644)
	return w
}

func (w *auditWorld) client() *client.Client {
	return client.New(w.co.Addrs.Client, w.root.Root, client.WithCertificate(w.admin.TLS))
}

// setManifest sets the next manifest (the first by anyone) and returns its digest.
func (w *auditWorld) setManifest(t *testing.T, extraUsers int) (string, error) {
	t.Helper()
	c := w.client()
	if w.version == 0 {
		c = client.New(w.co.Addrs.Client, w.root.Root)
	}
	m := w.newManifest(t, extraUsers)
	r, err := c.SetManifest(t.Context(), m)
	if err != nil {
		return "", err
	}
	w.version, w.manifest = r.Version, m
	return r.Digest, nil
}

// writeSecret writes a fresh random value to secret name and returns it.
func (w *auditWorld) writeSecret(t *testing.T, name string) (string, error) {
	t.Helper()
	v := fmt.Sprintf("value-%016x-%016x", rand.Uint64(), rand.Uint64())
	w.mu.Lock()
	w.secrets = append(w.secrets, v) // sent: it must not appear in the log, whatever the answer
	w.mu.Unlock()
	return v, w.client().SetSecrets(t.Context(), map[string][]byte{name: []byte(v)})
}

// activate activates workload on the workload API with the audit test enclave.
func (w *auditWorld) activate(t *testing.T, workload string) error {
	t.Helper()
	iss := auditBody()
	iss.Platform = w.p
	s, err := client.DialMesh(t.Context(), w.co.Addrs.Mesh, w.co.Expect())
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Activate(t.Context(), workload, "i1", newCSR(t, workload).der, &iss)
	return err
}

// export runs cloister audit log --export and returns the file.
func (w *auditWorld) export(t *testing.T, name string) string {
	t.Helper()
	path := w.e.Path(name)
	w.e.MustCLI(t, append([]string{"audit", "log", "--coordinator", w.co.Addrs.Client, "--export", path}, w.admin.Flags()...)...)
	return path
}

// TestAuditLog runs a scripted session of 50 operations against a real Coordinator, exports
// its log with the CLI and checks it offline: it verifies; a single changed, dropped, reordered
// or inserted entry is refused with the entry named; a log that forks from a head seen before is
// refused; no secret value is in it; a restart continues the chain with a start entry.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	w := newAuditWorld(t)
	ops := 0
	for i := range 5 {
		if _, err := w.setManifest(t, i); err != nil {
			t.Fatalf("manifest %d: %v", i+1, err)
		}
		ops++
	}
	for i := range 35 {
		if _, err := w.writeSecret(t, fmt.Sprintf("s%d", i%5)); err != nil {
			t.Fatal(err)
		}
		ops++
	}
	for i := range 10 {
		workload := []string{"app", "free"}[i%2]
		if err := w.activate(t, workload); err != nil {
			t.Fatalf("activate %s: %v", workload, err)
		}
		ops++
	}
	if err := w.activate(t, "nope"); err == nil {
		t.Fatal("unknown workload activated")
	}
	// A clean restart closes the hour's activation counts and starts again.
	st, err := w.client().Status(t.Context())
	if err != nil || st.AuditHead == nil {
		t.Fatalf("status: %+v, %v; want an audit head", st, err)
	}
	seenBefore := st.AuditHead
	w.co.Restart(t)
	if err := w.activate(t, "free"); err != nil {
		t.Fatal(err)
	}
	ops++

	// Evidence made now, whose head the export below extends.
	bundle := w.e.Path("evidence.json")
	w.e.MustCLI(t, "verify", "--coordinator", w.co.Addrs.Client, "--simulation", w.p.Dir(), "--bundle", bundle)

	path := w.export(t, "audit.jsonl")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e2etest.WriteJSON(t, w.e.Path("seen.json"), seenBefore)
	r := w.e.MustCLI(t, "audit", "verify", path, "--root", w.e.Path("root.pem"), "--seen", w.e.Path("seen.json"), "--output", "json")
	var rep jsonoutput.AuditVerify
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d operations, %d entries, %d bytes: %v", ops, rep.Entries, len(raw), rep.Kinds)
	want := map[string]uint64{"coordinator.start": 2, "manifest.set": 5, "secret.write": 35}
	for k, n := range want {
		if rep.Kinds[k] != n {
			t.Errorf("%d %s entries, want %d (all: %v)", rep.Kinds[k], k, n, rep.Kinds)
		}
	}
	// One entry per workload (app, free, unknown) and hour: more if the session crossed an hour.
	if n := rep.Kinds["activations"]; n < 3 || n > 7 {
		t.Errorf("%d activation entries, want 3 (or a few more across an hour)", n)
	}
	if !rep.Valid || !rep.SeenChecked {
		t.Errorf("report %+v: want valid, through the seen head", rep)
	}
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	var activations int
	for _, l := range lines[1 : len(lines)-1] {
		e, err := audit.ParseEntry(l)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == audit.KindActivations {
			var n int
			fmt.Sscan(e.Fields["total"], &n)
			activations += n
		}
	}
	// 10 accepted and 1 refused before the restart; the one after it is in an open hour, unless
	// the hour ended since.
	if activations != 11 && activations != 12 {
		t.Errorf("activation entries count %d activations, want 11 (10 + 1 refused) before the restart", activations)
	}
	for _, v := range w.secrets {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the export holds the secret value %q", v)
		}
	}
	secrets := map[string]string{}
	for i, v := range w.secrets {
		secrets[fmt.Sprintf("secret write %d", i)] = v
	}
	w.e.assertNoSecretsInLogs(t, secrets)

	// The bundle verifies offline, and the export proves its manifest: quote -> head -> log.
	e2etest.WriteFile(t, w.e.Path("manifest.json"), w.manifest, 0o644)
	r = w.e.MustCLI(t, "bundle", "verify", bundle, "--simulation", w.p.Dir(), "--audit", path, "--manifest", w.e.Path("manifest.json"), "--output", "json")
	var bv jsonoutput.BundleVerify
	if err := json.Unmarshal([]byte(r.Stdout), &bv); err != nil {
		t.Fatal(err)
	}
	for _, c := range bv.Checks {
		if c.Result != "ok" {
			t.Errorf("bundle check %s: %s (%s)", c.Name, c.Result, c.Detail)
		}
	}
	if !bv.Verified || len(bv.Checks) != 7 || bv.ManifestVersion != 5 {
		t.Errorf("bundle verify: %+v", bv)
	}
	// Long after, its collateral has expired; a log of another deployment proves nothing.
	r = w.e.CLI(t, "bundle", "verify", bundle, "--simulation", w.p.Dir(), "--at", time.Now().AddDate(2, 0, 0).Format(time.RFC3339))
	if r.Code != 1 || !strings.Contains(r.Stdout, "failed  policy         collateral outside its validity") {
		t.Errorf("bundle verified two years later: %v", r)
	}
	r = w.e.CLI(t, "bundle", "verify", bundle, "--simulation", w.p.Dir(), "--manifest", w.e.Path("root.pem"))
	if r.Code != 1 || !strings.Contains(r.Stdout, "failed  manifest_file") {
		t.Errorf("bundle verified with another manifest: %v", r)
	}

	// --follow prints new entries as they come, and stops cleanly when interrupted.
	follow := w.e.Start(t, "audit log --follow", append(w.e.BaseEnv(), "CLOISTER_CONFIG_DIR="+w.e.ConfigDir), w.e.Bins.Cloister,
		append([]string{"audit", "log", "--follow", "--interval", "200ms", "--from", fmt.Sprint(rep.Last + 1), "--coordinator", w.co.Addrs.Client}, w.admin.Flags()...)...)
	if _, err := w.writeSecret(t, "s3"); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, e2etest.StartTimeout, "audit log --follow to print the new entry", func() (bool, string) {
		out := follow.Output()
		return strings.Contains(out, "secret.write") && strings.Contains(out, "secrets=s3"), out
	})
	follow.Interrupt(t)

	// Tampering, each refused naming the entry. Line i+1 holds entry i (line 1 is the header).
	refused := func(name string, lines [][]byte, want ...string) {
		t.Helper()
		p := w.e.Path(name + ".jsonl")
		e2etest.WriteFile(t, p, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644)
		r := w.e.CLI(t, "audit", "verify", p, "--root", w.e.Path("root.pem"))
		if r.Code != 1 {
			t.Errorf("%s: %v\nwant exit 1", name, r)
			return
		}
		for _, s := range want {
			if !strings.Contains(r.Stdout+r.Stderr, s) {
				t.Errorf("%s: %v\nwant %q", name, r, s)
			}
		}
	}
	edit := func(f func(l [][]byte) [][]byte) [][]byte {
		c := make([][]byte, len(lines))
		for i := range lines {
			c[i] = bytes.Clone(lines[i])
		}
		return f(c)
	}
	k := 20 // entry 20, a secret write, on line 21
	refused("changed", edit(func(l [][]byte) [][]byte {
		l[k] = bytes.Replace(l[k], []byte(`"count":"1"`), []byte(`"count":"2"`), 1)
		return l
	}), "line 22: entry 21: prev is", "an entry changed, dropped or inserted?")
	refused("dropped", edit(func(l [][]byte) [][]byte { return append(l[:k:k], l[k+1:]...) }),
		"line 21: entry 21: expected entry 20")
	refused("reordered", edit(func(l [][]byte) [][]byte { l[k], l[k+1] = l[k+1], l[k]; return l }),
		"line 21: entry 21: expected entry 20")
	refused("inserted", edit(func(l [][]byte) [][]byte {
		return append(l[:k:k], append([][]byte{l[k-1]}, l[k:]...)...)
	}), "line 21: entry 19: expected entry 20")
	refused("changed last", edit(func(l [][]byte) [][]byte {
		n := len(l) - 2
		l[n] = bytes.Replace(l[n], []byte(`"actor":"coordinator"`), []byte(`"actor":"admin"`), 1)
		return l
	}), "head names entry", "the export's last entry is")
	refused("truncated", edit(func(l [][]byte) [][]byte { return l[:len(l)-2] }),
		"the export ends without a head (truncated?)")
	refused("head of an earlier entry", edit(func(l [][]byte) [][]byte { return append(l[:len(l)-2:len(l)-2], l[len(l)-1]) }),
		"head names entry", "the export's last entry is")

	// A fork: the state copied at this point (as an operator could restore a backup), the
	// original moves on and a client sees its head; the copy moves on differently. The copy's
	// log, though signed by the same root, is refused against the head the client saw.
	w.co.Stop(t)
	copyDir(t, w.co.DataDir, w.e.Path("data-fork"))
	w.co.Start(t, &w.co.Addrs)
	if _, err := w.writeSecret(t, "s1"); err != nil {
		t.Fatal(err)
	}
	st, err = w.client().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e2etest.WriteJSON(t, w.e.Path("seen-original.json"), st.AuditHead)
	w.co.Stop(t)
	fork := w.e.StartCoordinator(t, "coordinator-fork", w.p, w.e.Path("data-fork"), nil)
	forkWorld := &auditWorld{e: w.e, co: fork, admin: w.admin, root: w.root, p: w.p, version: w.version}
	if _, err := forkWorld.setManifest(t, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := forkWorld.writeSecret(t, "s2"); err != nil {
		t.Fatal(err)
	}
	w.e.MustCLI(t, "verify", "--coordinator", fork.Addrs.Client, "--simulation", w.p.Dir())
	forked := forkWorld.export(t, "forked.jsonl")
	w.secrets = append(w.secrets, forkWorld.secrets...)
	fork.Stop(t)
	r = w.e.CLI(t, "audit", "verify", forked, "--root", w.e.Path("root.pem"), "--seen", w.e.Path("seen-original.json"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "the log forks from the head you saw: entry "+fmt.Sprint(st.AuditHead.Seq)) {
		t.Errorf("forked log: %v\nwant exit 1, refused as a fork of entry %d", r, st.AuditHead.Seq)
	}
	// And without --seen it is a perfectly good log: only a head seen before exposes a fork.
	w.e.MustCLI(t, "audit", "verify", forked, "--root", w.e.Path("root.pem"))
}

// TestAuditCrash kills the Coordinator with SIGKILL at random points while operations run
// (manifest updates, secret writes, activations of a limited workload), restarts it, and checks
// after each restart that the exported log verifies and extends every head seen before, and
// that every acknowledged operation is in it: each manifest by its digest, secret writes and
// accepted activations at least as often as they were acknowledged.
func TestAuditCrash(t *testing.T) {
	t.Parallel()
	w := newAuditWorld(t)
	if _, err := w.setManifest(t, 0); err != nil {
		t.Fatal(err)
	}
	var (
		mu          sync.Mutex // guards the acknowledged operations
		digests     []string
		writes      = map[string]int{}
		activations int
		attempts    int
	)
	const rounds = 6
	seen := []*audit.Head{}
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					attempts++
					mu.Unlock()
					switch (g + i) % 3 {
					case 0:
						if d, err := w.setManifestQuiet(t, i%3); err == nil {
							mu.Lock()
							digests = append(digests, d)
							mu.Unlock()
						}
					case 1:
						name := fmt.Sprintf("s%d", rand.IntN(5))
						if _, err := w.writeSecret(t, name); err == nil {
							mu.Lock()
							writes[name]++
							mu.Unlock()
						}
					case 2:
						if err := w.activateQuiet(t, "app"); err == nil {
							mu.Lock()
							activations++
							mu.Unlock()
						}
					}
				}
			})
		}
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		if err := w.co.Proc.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		w.co.Proc.Wait(t, e2etest.StopTimeout)
		close(stop)
		wg.Wait()
		w.co.Start(t, &w.co.Addrs)

		path := w.export(t, fmt.Sprintf("crash-%d.jsonl", round))
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		mDigests := map[string]bool{}
		var lastManifest *audit.Entry
		logWrites := map[string]int{}
		logActivations := 0
		for _, s := range seen { // every head seen before, each in turn
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(f, audit.VerifyOptions{Root: w.root.Root, Seen: s}); err != nil {
				t.Fatalf("round %d: the log does not extend head %d seen before the crash: %v", round, s.Seq, err)
			}
		}
		f.Seek(0, 0)
		rep, err := audit.Verify(f, audit.VerifyOptions{Root: w.root.Root, OnEntry: func(e *audit.Entry) error {
			switch e.Kind {
			case audit.KindManifestSet:
				mDigests[e.Fields["manifest_sha256"]] = true
				lastManifest = e
			case audit.KindSecretWrite:
				logWrites[e.Fields["secrets"]]++
			case audit.KindActivations:
				if e.Fields["workload"] == "app" {
					var n int
					fmt.Sscan(e.Fields["accepted"], &n)
					logActivations += n
				}
			}
			return nil
		}})
		f.Close()
		if err != nil {
			t.Fatalf("round %d: export does not verify: %v", round, err)
		}
		seen = append(seen, &rep.Head)
		// The log and the state agree: the last manifest entry is the current manifest.
		st, err := w.client().Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if lastManifest == nil || lastManifest.Fields["version"] != fmt.Sprint(st.ManifestVersion) || lastManifest.Fields["manifest_sha256"] != st.ManifestDigest {
			t.Errorf("round %d: the Coordinator runs manifest version %d (%s); the log's last manifest entry is %+v", round, st.ManifestVersion, st.ManifestDigest, lastManifest)
		}
		mu.Lock()
		for _, d := range digests {
			if !mDigests[d] {
				t.Errorf("round %d: acknowledged manifest %s is not in the log", round, d)
			}
		}
		for n, c := range writes {
			if logWrites[n] < c {
				t.Errorf("round %d: %d acknowledged writes of %s, %d in the log", round, c, n, logWrites[n])
			}
		}
		// Accepted activations of a limited workload are in the log as durably as their count.
		if logActivations < activations {
			t.Errorf("round %d: %d acknowledged activations of app, %d in the log", round, activations, logActivations)
		}
		t.Logf("round %d: %d attempts; acknowledged %d manifests, %v writes, %d activations; log %d entries, %d activations",
			round, attempts, len(digests), writes, activations, rep.Last, logActivations)
		mu.Unlock()
	}
	w.co.Stop(t)
}

// setManifestQuiet and activateQuiet are the operations of TestAuditCrash, which expects
// failures while the Coordinator is down (and must not fail the test for them).
func (w *auditWorld) setManifestQuiet(t *testing.T, extraUsers int) (string, error) {
	r, err := w.client().SetManifest(t.Context(), w.manifestFixed(extraUsers))
	if err != nil {
		return "", err
	}
	return r.Digest, nil
}

// manifestFixed returns one of three manifest variants, made once.
func (w *auditWorld) manifestFixed(variant int) []byte {
	w.fixedOnce.Do(func() {
		for i := range 3 {
			w.fixed = append(w.fixed, w.manifestWith(nil, i))
		}
	})
	return w.fixed[variant%len(w.fixed)]
}

func (w *auditWorld) activateQuiet(t *testing.T, workload string) error {
	iss := auditBody()
	iss.Platform = w.p
	s, err := client.DialMesh(t.Context(), w.co.Addrs.Mesh, w.co.Expect())
	if err != nil {
		return err
	}
	defer s.Close()
	// A new key for every activation, as a new launcher has: the same key again would be a
	// retry of a counted activation, and not counted again.
	k, err := client.NewWorkloadKey(workload)
	if err != nil {
		return err
	}
	_, err = s.Activate(t.Context(), workload, "i1", k.CSR, &iss)
	return err
}
