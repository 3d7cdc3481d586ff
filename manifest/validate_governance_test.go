package manifest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"strings"
	"testing"
	"time"
)

func testKey(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/keys/" + name + ".pub")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// governanceDoc is baseDoc with two updaters (alice, bob), a packages role and recovery.
func governanceDoc(tb testing.TB) obj {
	d := baseDoc(tb)
	at(d, "users")["bob"] = obj{"certificate": testCert(tb, "bob"), "roles": arr{"admin", "svn"}}
	at(d, "users", "alice")["roles"] = arr{"ops", "admin"}
	at(d, "roles")["admin"] = obj{"resource": "manifest", "actions": arr{"update"}}
	at(d, "roles")["svn"] = obj{"resource": "packages", "names": arr{"web"}, "actions": arr{"update"}}
	d["governance"] = obj{
		"update_threshold":      2,
		"pending_update_expiry": "48h",
		"recovery": obj{"threshold": 2, "keys": obj{
			"carol": testKey(tb, "rsa3072"), "dave": testKey(tb, "x25519-a"), "erin": testKey(tb, "x25519-b"),
		}},
	}
	return d
}

func TestGovernanceValid(t *testing.T) {
	m, err := Parse(marshal(t, governanceDoc(t)))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Governance
	if g.UpdateThreshold != 2 || g.PendingUpdateExpiry.D() != 48*time.Hour || g.Recovery.Threshold != 2 || len(g.Recovery.Keys) != 3 {
		t.Errorf("governance = %+v", g)
	}
	if got := m.Updaters(); strings.Join(got, ",") != "alice,bob" {
		t.Errorf("Updaters() = %v, want [alice bob]", got)
	}
	if !m.Allowed("bob", ResourcePackages, Update, "web") || m.Allowed("alice", ResourcePackages, Update, "web") || m.Allowed("bob", ResourcePackages, Update, "db") {
		t.Errorf("packages role not applied as named")
	}
	if got := m.RecoveryHolders(); strings.Join(got, ",") != "carol,dave,erin" {
		t.Errorf("RecoveryHolders() = %v", got)
	}
}

// A manifest without governance keeps today's meaning: one updater, the default expiry, no
// recovery.
func TestGovernanceDefaults(t *testing.T) {
	m, err := Parse(marshal(t, baseDoc(t)))
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Governance; g.UpdateThreshold != 1 || g.PendingUpdateExpiry != DefaultPendingUpdateExpiry || g.Recovery != nil {
		t.Errorf("defaults = %+v", g)
	}
	// Writing the defaults out is no change.
	d := baseDoc(t)
	d["governance"] = obj{"update_threshold": 1, "pending_update_expiry": "72h"}
	m2, err := Parse(marshal(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if c := Diff(m, m2); len(c) != 0 {
		t.Errorf("Diff with defaults written out = %v, want none", c)
	}
}

func TestGovernanceRules(t *testing.T) {
	setGov := func(k string, v any) func(obj) { return func(d obj) { at(d, "governance")[k] = v } }
	setRec := func(k string, v any) func(obj) { return func(d obj) { at(d, "governance", "recovery")[k] = v } }
	setKey := func(holder, v string) func(obj) {
		return func(d obj) { at(d, "governance", "recovery", "keys")[holder] = v }
	}
	for _, tc := range []struct {
		name   string
		mutate func(d obj)
		path   string
		msg    string
	}{
		{"threshold zero", setGov("update_threshold", 0), "$.governance.update_threshold", "expected at least 1 approval, found 0"},
		{"threshold above updaters", setGov("update_threshold", 3), "$.governance.update_threshold",
			"expected at most the number of users whose roles grant update on the manifest (2: alice, bob), found 3"},
		{"threshold 2 without updaters", func(d obj) {
			d["users"] = obj{}
			at(d, "governance")["update_threshold"] = 2
		}, "$.governance.update_threshold", "(0: (none)), found 2"},
		{"expiry too short", setGov("pending_update_expiry", "30s"), "$.governance.pending_update_expiry", "expected a duration from 1m to 720h, found 30s"},
		{"expiry too long", setGov("pending_update_expiry", "721h"), "$.governance.pending_update_expiry", "found 721h0m0s"},
		{"expiry not a duration", setGov("pending_update_expiry", "3 days"), "$.governance.pending_update_expiry", "expected a duration"},
		{"unknown key", setGov("quorum", 2), "$.governance.quorum", `unknown key "quorum"; expected one of: update_threshold, pending_update_expiry, recovery`},
		{"recovery threshold zero", setRec("threshold", 0), "$.governance.recovery.threshold", "expected a threshold from 1 to the number of keys (3), found 0"},
		{"recovery threshold above keys", setRec("threshold", 4), "$.governance.recovery.threshold", "found 4"},
		{"recovery threshold above one key", func(d obj) {
			setRec("keys", obj{"carol": testKey(t, "rsa3072")})(d)
		}, "$.governance.recovery.threshold", "expected a threshold from 1 to the number of keys (1), found 2"},
		{"recovery without keys", func(d obj) { delete(at(d, "governance", "recovery"), "keys") }, "$.governance.recovery.keys", "found 0"},
		{"recovery holder name", func(d obj) {
			keys := at(d, "governance", "recovery", "keys")
			keys["c arol"] = keys["dave"]
			delete(keys, "dave")
		}, `$.governance.recovery.keys["c arol"]`, "invalid recovery key holder name"},
		{"recovery RSA-2048", setKey("carol", testKey(t, "rsa2048")), "$.governance.recovery.keys.carol", "expected an RSA key of 3072 bits, found 2048 bits"},
		{"recovery key twice", setKey("erin", testKey(t, "x25519-a")), "$.governance.recovery.keys.erin", `found the key of holder "dave"`},
		{"recovery key not PEM", setKey("carol", "MCowBQYDK2VuAyEA"), "$.governance.recovery.keys.carol", `expected a PEM "PUBLIC KEY" block, found no PEM data`},
		{"recovery key is a certificate", setKey("carol", testCert(t, "alice")), "$.governance.recovery.keys.carol", `found a "CERTIFICATE" block`},
		{"recovery key P-256", setKey("carol", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtL/gw6EEGL9o2vR2fPbXEH2AJ+VOn8EaR1DrLxdEuU0K+Ilgbgkw6kROGuWEbYA33WsPkwht++dXDf7sfglvBw==\n-----END PUBLIC KEY-----\n"),
			"$.governance.recovery.keys.carol", "expected an RSA-3072 or X25519 public key, found a *ecdsa.PublicKey"},
		{"recovery key empty", setKey("carol", " "), "$.governance.recovery.keys.carol", "expected the holder's PEM public key, found none"},
		{"packages role unknown package", func(d obj) { at(d, "roles", "svn")["names"] = arr{"wbe"} }, "$.roles.svn.names[0]", `unknown package "wbe"; defined packages: db, web`},
		{"packages role without names", func(d obj) { delete(at(d, "roles", "svn"), "names") }, "$.roles.svn.names", "expected the names of the packages the role covers, found none"},
		{"packages role read", func(d obj) { at(d, "roles", "svn")["actions"] = arr{"read"} }, "$.roles.svn.actions[0]", `expected action for packages [update], found "read"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := governanceDoc(t)
			tc.mutate(d)
			_, err := Parse(marshal(t, d))
			wantFieldError(t, err, tc.path, tc.msg, 0)
		})
	}
}

func TestWithMinISVSVN(t *testing.T) {
	raw := []byte("{\n  \"packages\": {\"db\": {\"mrenclave\": \"" + hexB + "\"},\n    \"web\": {\"min_isvsvn\" :\t 1, \"mrsigner\": \"" + hexA + "\", \"isvprodid\": 1},\n" +
		"    \"other\": {\"mrsigner\": \"" + hexA + "\", \"isvprodid\": 2, \"min_isvsvn\": 1}},\n  \"settings\": {\"trust_domain\": \"min_isvsvn.example\"}\n}\n")
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.WithMinISVSVN("web", 42)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Replace(raw, []byte("\"min_isvsvn\" :\t 1,"), []byte("\"min_isvsvn\" :\t 42,"), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("WithMinISVSVN changed more than the number:\n got %s\nwant %s", got, want)
	}
	again, _ := m.WithMinISVSVN("web", 42)
	if !bytes.Equal(got, again) {
		t.Errorf("WithMinISVSVN is not deterministic")
	}
	m2, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if *m2.Packages["web"].MinISVSVN != 42 || *m2.Packages["other"].MinISVSVN != 1 {
		t.Errorf("after the rewrite: web %d, other %d; want 42 and 1", *m2.Packages["web"].MinISVSVN, *m2.Packages["other"].MinISVSVN)
	}
	if c := Diff(m, m2); len(c) != 1 || c[0].Path != "$.packages.web.min_isvsvn" {
		t.Errorf("Diff = %v, want one change at $.packages.web.min_isvsvn", c)
	}
	if sha256.Sum256(got) == m.Digest() {
		t.Errorf("digest unchanged")
	}
	for _, pkg := range []string{"db", "nope"} {
		if _, err := m.WithMinISVSVN(pkg, 2); err == nil {
			t.Errorf("WithMinISVSVN(%q) succeeded", pkg)
		}
	}
}
