package controlplane

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestGovernance runs multi-party manifest updates and security-version updates on a real
// Coordinator process through the CLI: three updaters with threshold 2, a user without the
// role, and an SVN operator. An update applies after exactly two approvals; approvals from a
// user without the role, over another hash, or replayed from an earlier proposal are refused,
// as is a second concurrent proposal; after the update unchanged secrets keep their values and
// removed ones are gone; an SVN update refuses a lower value and then refuses activations below
// the new one.
func TestGovernance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	co := e.StartCoordinator(t, "coordinator", p, e.Path("data"), nil)
	users := map[string]*e2etest.User{}
	for _, n := range []string{"u1", "u2", "u3", "outsider", "svnop"} {
		users[n] = e.NewUser(t, n)
	}
	conn := func(user string) []string {
		f := []string{"--coordinator", co.Addrs.Client}
		if user != "" {
			f = append(f, users[user].Flags()...)
		}
		return f
	}
	cli := func(user string, args ...string) e2etest.CLIResult {
		t.Helper()
		return e.MustCLI(t, append(args, conn(user)...)...)
	}
	fails := func(user string, want []string, args ...string) {
		t.Helper()
		e.CLIFails(t, want, append(args, conn(user)...)...)
	}
	version := func() int {
		t.Helper()
		return decodeOutput[jsonoutput.Status](t, cli("", "status", "--output", "json")).ManifestVersion
	}
	a := e.newApp(t, "gov", signer, nil) // ISVSVN 3
	signerID := enclave.MRSigner(&signer.PublicKey)
	launch := func(instance string) launchOpts {
		return launchOpts{instance: instance, mesh: co.Addrs.Mesh, simDir: p.Dir()}
	}

	manifest := func(v2 bool) map[string]any {
		env := map[string]string{"INSTANCE": "{{.Workload.Instance}}", "KEEP": "{{.Secrets.keep.Hex}}", "CHANGE": "{{.Secrets.change.Hex}}", "INST": "{{.Secrets.inst.Hex}}"}
		secrets := map[string]any{
			"keep":   map[string]any{"type": "symmetric-key", "size": 128},
			"change": map[string]any{"type": "symmetric-key", "size": 128},
			"inst":   map[string]any{"type": "symmetric-key", "size": 128, "per_instance": true},
		}
		if v2 {
			secrets["change"] = map[string]any{"type": "symmetric-key", "size": 256}
			secrets["fresh"] = map[string]any{"type": "symmetric-key", "size": 128}
			env["FRESH"] = "{{.Secrets.fresh.Hex}}"
		} else {
			secrets["gone"] = map[string]any{"type": "symmetric-key", "size": 128}
			env["GONE"] = "{{.Secrets.gone.Hex}}"
		}
		readable := []string{"keep", "change"}
		if !v2 {
			readable = append(readable, "gone")
		}
		u := func(name string, roles ...string) map[string]any {
			return map[string]any{"certificate": users[name].CertPEM, "roles": roles}
		}
		return map[string]any{
			"packages":  map[string]any{"signed": map[string]any{"mrsigner": hex.EncodeToString(signerID[:]), "isvprodid": 7, "min_isvsvn": 3}},
			"workloads": map[string]any{"gov": map[string]any{"package": "signed", "env": env}},
			"secrets":   secrets,
			"users": map[string]any{
				"u1": u("u1", "updater", "reader"), "u2": u("u2", "updater"), "u3": u("u3", "updater"),
				"outsider": u("outsider", "reader"), "svnop": u("svnop", "svn"),
			},
			"roles": map[string]any{
				"updater": map[string]any{"resource": "manifest", "actions": []string{"update"}},
				"reader":  map[string]any{"resource": "secrets", "names": readable, "actions": []string{"read"}},
				"svn":     map[string]any{"resource": "packages", "names": []string{"signed"}, "actions": []string{"update"}},
			},
			"governance": map[string]any{"update_threshold": 2},
		}
	}
	v1Path, v2Path := e.Path("v1.json"), e.Path("v2.json")
	e2etest.WriteJSON(t, v1Path, manifest(false))
	v2 := e2etest.WriteJSON(t, v2Path, manifest(true))

	cli("", "verify", "--simulation", p.Dir())
	cli("", "manifest", "set", v1Path)
	before := e.mustLaunch(t, a, launch("i1"))
	fails("u1", []string{"coordinator refused (FORBIDDEN)", "needs 2 approvals"}, "manifest", "set", v2Path)

	// A first proposal of v2, approved by u2, then withdrawn: its approval must not count later.
	first := decodeOutput[jsonoutput.ManifestPending](t, cli("u3", "manifest", "propose", v2Path, "--output", "json"))
	cli("u2", "manifest", "approve", "--hash", first.Digest, "--yes")
	c := client.New(co.Addrs.Client, mustRoot(t, e, co))
	earlier, err := c.PendingManifest(t.Context())
	if err != nil || len(earlier.Approvals) != 1 {
		t.Fatalf("pending after one approval: %+v, %v", earlier, err)
	}
	replayed := earlier.Approvals[0].Signature
	cli("u3", "manifest", "cancel", "--id", first.ID)
	if v := version(); v != 1 {
		t.Fatalf("version %d after a cancelled proposal", v)
	}

	second := decodeOutput[jsonoutput.ManifestPending](t, cli("u1", "manifest", "propose", v2Path, "--output", "json"))
	if second.Digest != first.Digest || second.ID == first.ID || second.Threshold != 2 || second.Proposer != "u1" {
		t.Fatalf("second proposal %+v (first %+v)", second, first)
	}
	// A second concurrent proposal is refused, naming the pending one.
	fails("u3", []string{"coordinator refused (CONFLICT)", "another manifest update is pending", second.Digest, `proposed by "u1"`}, "manifest", "propose", v1Path)
	// A user without the role.
	fails("outsider", []string{"coordinator refused (FORBIDDEN)", `user "outsider" has no role that grants update on the manifest`}, "manifest", "approve", "--yes")
	// A signature over another hash, and a replayed approval of the earlier proposal.
	pending, err := c.PendingManifest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other := *pending
	other.Digest = strings.Repeat("0", 64)
	sig, err := client.SignApproval(users["u2"].TLS.PrivateKey.(crypto.Signer), &other)
	if err != nil {
		t.Fatal(err)
	}
	approve := func(id, digest string, sig []byte) (int, api.ErrorBody) {
		b, _ := json.Marshal(api.ApproveRequest{ID: id, Digest: digest, Signature: sig})
		return post(t, co.Addrs.Client, api.PathManifestApprove, b, users["u2"])
	}
	for _, tc := range []struct {
		name        string
		id, digest  string
		sig         []byte
		status      int
		code, where string
	}{
		{"signature over another hash", pending.ID, pending.Digest, sig, http.StatusForbidden, api.CodeSignatureInvalid, "the signature does not verify"},
		{"approval for another hash", pending.ID, other.Digest, sig, http.StatusConflict, api.CodeConflict, "the pending update is manifest " + pending.Digest},
		{"replayed approval, earlier proposal's ID", first.ID, first.Digest, replayed, http.StatusConflict, api.CodeConflict, "which is not pending"},
		{"replayed approval, pending proposal's ID", pending.ID, pending.Digest, replayed, http.StatusForbidden, api.CodeSignatureInvalid, "the signature does not verify"},
	} {
		status, body := approve(tc.id, tc.digest, tc.sig)
		if status != tc.status || body.Code != tc.code || !strings.Contains(body.Message, tc.where) {
			t.Errorf("%s: %d %s %q; want %d %s saying %q", tc.name, status, body.Code, body.Message, tc.status, tc.code, tc.where)
		}
	}

	// Exactly two approvals apply it.
	r := decodeOutput[jsonoutput.ManifestApprove](t, cli("u1", "manifest", "approve", "--hash", second.Digest, "--yes", "--output", "json"))
	if r.Applied || r.Approvals != 1 || version() != 1 {
		t.Fatalf("after one approval: %+v, version %d; want not applied", r, version())
	}
	fails("u1", []string{"coordinator refused (CONFLICT)", `user "u1" has already approved`}, "manifest", "approve", "--yes")
	pend := decodeOutput[jsonoutput.ManifestPending](t, cli("", "manifest", "pending", "--output", "json"))
	if !pend.Pending || len(pend.Approvals) != 1 || pend.Approvals[0].User != "u1" || len(pend.Changes) == 0 {
		t.Errorf("manifest pending: %+v", pend)
	}
	out := cli("u2", "manifest", "approve", "--hash", second.Digest, "--yes")
	if want := fmt.Sprintf("Approved (2 of 2): the update is applied as manifest version 2 (SHA-256 %s).", second.Digest); !strings.Contains(out.Stdout, want) {
		t.Errorf("approve says %q, want %q", out.Stdout, want)
	}
	if got := cli("", "manifest", "get").Stdout; got != string(v2) || version() != 2 {
		t.Errorf("after the apply: version %d, manifest %d bytes (want the %d proposed)", version(), len(got), len(v2))
	}
	if decodeOutput[jsonoutput.ManifestPending](t, cli("", "manifest", "pending", "--output", "json")).Pending {
		t.Errorf("an update is still pending after the apply")
	}

	// Unchanged secrets kept their values, the changed one has a new value, the removed one is gone.
	again := e.mustLaunch(t, a, launch("i1-after"))
	if again.env["KEEP"] != before.env["KEEP"] {
		t.Errorf("the unchanged secret changed its value")
	}
	if again.env["CHANGE"] == before.env["CHANGE"] || len(again.env["CHANGE"]) != 64 {
		t.Errorf("the changed secret kept its value (or has the wrong size): %d hex digits", len(again.env["CHANGE"]))
	}
	if _, ok := again.env["GONE"]; ok || again.env["FRESH"] == "" {
		t.Errorf("environment after the update: GONE present %v, FRESH %q", ok, again.env["FRESH"])
	}
	fails("u1", []string{"coordinator refused (NOT_FOUND)", `secret "gone" is not defined`}, "secret", "get", "gone")

	// Security-version updates.
	fails("u1", []string{"coordinator refused (FORBIDDEN)", `user "u1" has no role that grants update on package "signed"`}, "manifest", "update-svn", "signed", "4")
	fails("svnop", []string{"coordinator refused (CONFLICT)", "min_isvsvn is 3; expected a higher value, found 2"}, "manifest", "update-svn", "signed", "2")
	fails("svnop", []string{"coordinator refused (CONFLICT)", "found 3 (that is no change)"}, "manifest", "update-svn", "signed", "3")
	res := decodeOutput[jsonoutput.ManifestSet](t, cli("svnop", "manifest", "update-svn", "signed", "4", "--output", "json"))
	if res.Version != 3 {
		t.Errorf("update-svn made version %d, want 3", res.Version)
	}
	if got := cli("", "manifest", "get").Stdout; got != strings.Replace(string(v2), `"min_isvsvn": 3`, `"min_isvsvn": 4`, 1) {
		t.Errorf("the manifest after update-svn is not the previous one with the new SVN:\n%s", got)
	}
	e.launchFails(t, a, launch("i-below"), "coordinator refused (POLICY_REJECTED)", "isvsvn 3 not accepted; expected at least 4")
	// The state survives a restart.
	co.Restart(t)
	if v := version(); v != 3 {
		t.Errorf("version %d after a restart, want 3", v)
	}
	co.Stop(t)
}

// mustRoot verifies the Coordinator and returns its root.
func mustRoot(t *testing.T, e *env, co *e2etest.Coordinator) *x509.Certificate {
	t.Helper()
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	return v.Root
}
