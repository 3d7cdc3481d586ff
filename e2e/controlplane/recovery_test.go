package controlplane

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
	"github.com/cloister-dev/cloister/recovery"
)

// holder is a recovery key holder of the test: its key files.
type holder struct {
	name, keyFile, pubPEM string
	priv                  recovery.PrivateKey
}

func newHolders(t *testing.T, e *env, n int) []*holder {
	t.Helper()
	var out []*holder
	for i := range n {
		h := &holder{name: fmt.Sprintf("keeper%d", i+1), keyFile: e.Path(fmt.Sprintf("keeper%d.key", i+1))}
		var priv any
		if i == 0 { // one RSA-3072 holder, the rest X25519
			k, err := rsa.GenerateKey(rand.Reader, 3072)
			if err != nil {
				t.Fatal(err)
			}
			priv, h.priv = k, k
		} else {
			k, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			priv, h.priv = k, k
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		e2etest.WriteFile(t, h.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		pub, err := x509.MarshalPKIXPublicKey(h.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		h.pubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
		out = append(out, h)
	}
	return out
}

// TestRecovery: five recovery key holders, threshold 3. The simulated platform's seal key is
// replaced (a "new CPU") and the Coordinator restarts in recovery mode, serving only its status
// and the recovery route. Two shares are not enough; a share signed by the wrong key, an
// unsigned one and a duplicate are refused; a kill -9 in the middle loses nothing (and voids
// the session's submissions); three shares, one of them signed on an "air-gapped" machine,
// recover the Coordinator without a restart, with every secret, certificate and activation
// count intact and the recovery in the audit log; after a restart it unseals on its own.
func TestRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	dataDir := e.Path("data")
	co := e.StartCoordinator(t, "coordinator", p, dataDir, nil)
	admin := e.NewUser(t, "admin")
	holders := newHolders(t, e, 5)
	sim := []string{"--simulation", p.Dir()}
	conn := func(args ...string) []string {
		return append(append(args, "--coordinator", co.Addrs.Client), sim...)
	}
	cli := func(args ...string) e2etest.CLIResult {
		t.Helper()
		return e.MustCLI(t, args...)
	}

	a := e.newApp(t, "rec", signer, nil)
	signerID := enclave.MRSigner(&signer.PublicKey)
	keys := map[string]any{}
	for _, h := range holders {
		keys[h.name] = h.pubPEM
	}
	manifest := map[string]any{
		"packages":  map[string]any{"signed": map[string]any{"mrsigner": hex.EncodeToString(signerID[:]), "isvprodid": 7, "min_isvsvn": 3}},
		"workloads": map[string]any{"rec": map[string]any{"package": "signed", "env": map[string]string{"INSTANCE": "{{.Workload.Instance}}", "SHARED": "{{.Secrets.shared.Hex}}", "INST": "{{.Secrets.inst.Hex}}"}}},
		"secrets": map[string]any{
			"shared": map[string]any{"type": "symmetric-key", "size": 256},
			"inst":   map[string]any{"type": "symmetric-key", "size": 128, "per_instance": true},
			"tls":    map[string]any{"type": "certificate", "dns": []string{"rec.internal"}},
		},
		"users": map[string]any{"admin": map[string]any{"certificate": admin.CertPEM, "roles": []string{"updater", "reader"}}},
		"roles": map[string]any{
			"updater": map[string]any{"resource": "manifest", "actions": []string{"update"}},
			"reader":  map[string]any{"resource": "secrets", "names": []string{"shared", "tls"}, "actions": []string{"read"}},
		},
		"governance": map[string]any{"recovery": map[string]any{"threshold": 3, "keys": keys}},
	}
	manifestPath := e.Path("manifest.json")
	e2etest.WriteJSON(t, manifestPath, manifest)

	cli(conn("verify")...)
	sharesDir := e.Path("shares")
	set := decodeOutput[jsonoutput.ManifestSet](t, cli("manifest", "set", manifestPath, "--recovery-shares", sharesDir, "--output", "json", "--coordinator", co.Addrs.Client))
	if len(set.RecoveryShares) != 5 {
		t.Fatalf("manifest set returned %d share files, want 5", len(set.RecoveryShares))
	}
	gen := set.RecoveryShares[0].Generation
	shareFile := map[string]string{}
	for _, h := range holders {
		shareFile[h.name] = filepath.Join(sharesDir, h.name+"."+gen[:8]+".share.json")
		if _, err := os.Stat(shareFile[h.name]); err != nil {
			t.Fatalf("share file of %s: %v", h.name, err)
		}
	}
	launch := func(instance string) launchOpts {
		return launchOpts{instance: instance, mesh: co.Addrs.Mesh, simDir: p.Dir()}
	}
	before := e.mustLaunch(t, a, launch("i1"))
	user := append([]string{"--coordinator", co.Addrs.Client}, admin.Flags()...)
	secretsBefore := e.CLISecrets(t, append([]string{"secret", "get", "shared", "tls", "--output", "json"}, user...)...).Stdout
	rootBefore := cli("certificate", "root", "--coordinator", co.Addrs.Client).Stdout
	statusBefore := decodeOutput[jsonoutput.Status](t, cli("status", "--output", "json", "--coordinator", co.Addrs.Client))
	if statusBefore.Recovery == nil || statusBefore.Recovery.Generation != gen || statusBefore.Recovery.Threshold != 3 {
		t.Fatalf("status recovery before: %+v", statusBefore.Recovery)
	}

	// A new CPU: the simulated seal key changes.
	co.Stop(t)
	newKey := make([]byte, 32)
	rand.Read(newKey)
	e2etest.WriteFile(t, filepath.Join(dataDir, "simulation-seal.key"), newKey, 0o600)
	at := co.Addrs
	co.Start(t, &at)

	rst := decodeOutput[jsonoutput.Recover](t, cli(conn("recover", "status", "--output", "json")...))
	if !strings.Contains(rst.Recovery.Reason, "sealed state cannot be unsealed with this CPU's seal key") || rst.Threshold != 3 || len(rst.Received) != 0 {
		t.Fatalf("recover status: %+v", rst)
	}
	if status, body := post(t, co.Addrs.Client, api.PathManifest, []byte("{}"), admin); status != http.StatusServiceUnavailable || body.Code != api.CodeRecoveryMode || !strings.Contains(body.Message, "recovery mode") {
		t.Errorf("POST manifest in recovery mode: %d %+v", status, body)
	}
	if status, body := post(t, co.Addrs.Mesh, api.PathActivate, []byte("{}"), nil); status != http.StatusServiceUnavailable || body.Code != api.CodeRecoveryMode {
		t.Errorf("activation in recovery mode: %d %+v", status, body)
	}
	// The pinned root's certificate is sealed away: status is refused, and says what to run.
	e.CLIFails(t, []string{"recovery-mode certificate", "cloister recover status"}, "status", "--coordinator", co.Addrs.Client)

	recover := func(h *holder, extra ...string) jsonoutput.Recover {
		t.Helper()
		return decodeOutput[jsonoutput.Recover](t, cli(conn(append([]string{"recover", shareFile[h.name], "--key", h.keyFile, "--output", "json"}, extra...)...)...))
	}
	// Two shares are not enough.
	for i, h := range holders[:2] {
		r := recover(h)
		if r.Recovered || len(r.Received) != i+1 || r.Holder != h.name {
			t.Fatalf("share %d: %+v", i+1, r)
		}
	}
	// A duplicate, a share decrypted with another holder's key, one signed by the wrong key, and
	// an unsigned one are refused.
	e.CLIFails(t, []string{"coordinator refused (CONFLICT)", `holder "keeper1"'s share was already accepted`}, conn("recover", shareFile["keeper1"], "--key", holders[0].keyFile)...)
	e.CLIFails(t, []string{"use holder \"keeper3\"'s own private key"}, conn("recover", shareFile["keeper3"], "--key", holders[3].keyFile)...)
	sess, err := client.DialRecovery(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(shareFile["keeper3"])
	share, err := recovery.ParseShare(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub3, _ := x509.MarshalPKIXPublicKey(holders[2].priv.Public())
	y, err := share.Decrypt(holders[2].priv, pub3)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := recovery.NewSubmission(share, y, holders[3].priv, &sess.Challenge.Challenge) // keeper3's share, keeper4's signature
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Submit(t.Context(), forged); err == nil || !strings.Contains(err.Error(), "SIGNATURE_INVALID") || !strings.Contains(err.Error(), "only the holder's own private key") {
		t.Errorf("share signed by the wrong key: %v, want SIGNATURE_INVALID", err)
	}
	sess.Close()
	unsigned := *forged
	unsigned.Signature = nil
	body, _ := json.Marshal(unsigned)
	if status, eb := post(t, co.Addrs.Client, api.PathRecovery, body, nil); status != http.StatusBadRequest || !strings.Contains(eb.Message, "signature") {
		t.Errorf("unsigned share: %d %+v", status, eb)
	}

	// Air-gapped: the challenge is exported, signed where there is no network (the --coordinator
	// given cannot be reached), and submitted later.
	chFile, signed := e.Path("challenge.json"), e.Path("keeper3.signed.json")
	cli(conn("recover", "challenge", "--out", chFile)...)
	offline := func() {
		t.Helper()
		cli(append([]string{"recover", shareFile["keeper3"], "--key", holders[2].keyFile, "--offline", "--challenge", chFile, "--out", signed, "--coordinator", "127.0.0.1:1"}, sim...)...)
	}
	offline()

	// kill -9 in the middle of the recovery: nothing is lost; the new session refuses the
	// submission signed for the old one, and wants its shares again.
	if err := co.Proc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	co.Proc.Wait(t, e2etest.StopTimeout)
	co.Start(t, &at)
	e.CLIFails(t, []string{"submission for another recovery session", "sign it again"}, conn("recover", "submit", signed)...)
	if r := decodeOutput[jsonoutput.Recover](t, cli(conn("recover", "status", "--output", "json")...)); len(r.Received) != 0 {
		t.Fatalf("after kill -9 the new session already has shares: %+v", r)
	}
	cli(conn("recover", "challenge", "--out", chFile)...)
	offline()

	start := time.Now()
	recover(holders[0])
	recover(holders[1])
	done := decodeOutput[jsonoutput.Recover](t, cli(conn("recover", "submit", signed, "--output", "json")...))
	if !done.Recovered || len(done.Received) != 3 || done.Holder != "keeper3" {
		t.Fatalf("third share: %+v", done)
	}
	var after jsonoutput.Status
	e2etest.WaitFor(t, e2etest.StartTimeout, "the recovered Coordinator to run", func() (bool, string) {
		r := e.CLI(t, "status", "--output", "json", "--coordinator", co.Addrs.Client)
		if r.Code != 0 {
			return false, r.Stderr
		}
		after = decodeOutput[jsonoutput.Status](t, r)
		return after.State == api.StateRunning, after.State
	})
	t.Logf("recovery time: 3 shares submitted and the Coordinator running again in %v (from the first submission's CLI start)", time.Since(start))

	// Everything is intact: root, secrets, manifest version, activation counts.
	if got := cli("certificate", "root", "--coordinator", co.Addrs.Client).Stdout; got != rootBefore {
		t.Error("the deployment root changed across the recovery")
	}
	if got := e.CLISecrets(t, append([]string{"secret", "get", "shared", "tls", "--output", "json"}, user...)...).Stdout; got != secretsBefore {
		t.Error("the secrets changed across the recovery")
	}
	if after.ManifestVersion != statusBefore.ManifestVersion || after.Activations["rec"] != statusBefore.Activations["rec"] || after.Activations["rec"] != 1 {
		t.Errorf("after recovery: version %d, activations %v; before: version %d, activations %v",
			after.ManifestVersion, after.Activations, statusBefore.ManifestVersion, statusBefore.Activations)
	}
	again := e.mustLaunch(t, a, launch("i1"))
	if again.env["SHARED"] != before.env["SHARED"] || again.env["INST"] != before.env["INST"] {
		t.Error("the workload's shared or per-instance secret changed across the recovery")
	}
	// The audit log names the recovery.
	log := cli(append([]string{"audit", "log", "--output", "json"}, user...)...).Stdout
	if !strings.Contains(log, `"event": "recovered"`) || !strings.Contains(log, `"holders": "keeper1,keeper2,keeper3"`) || !strings.Contains(log, gen) {
		t.Errorf("the audit log does not record the recovery by keeper1, keeper2 and keeper3 of split %s:\n%s", gen, log)
	}
	// Recovery is over: the route refuses, and a restart unseals under the new seal key.
	e.CLIFails(t, []string{"not in recovery mode"}, conn("recover", "status")...)
	co.Restart(t)
	if st := decodeOutput[jsonoutput.Status](t, cli("status", "--output", "json", "--coordinator", co.Addrs.Client)); st.State != api.StateRunning {
		t.Errorf("after a restart: %s", st.State)
	}
	// No share ever reached a log in the clear.
	for _, l := range e.Logs() {
		if out := l.Out.String(); strings.Contains(out, hex.EncodeToString(y)) || strings.Contains(out, base64.StdEncoding.EncodeToString(y)[:40]) || bytes.Contains([]byte(out), y) {
			t.Errorf("a decrypted share appears in log %s", l.Name)
		}
	}
	co.Stop(t)
}
