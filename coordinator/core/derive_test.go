package core

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/cloister-dev/cloister/store"
)

// master reads the master key of derived secrets from the fixture's store.
func (f *fixture) master() []byte {
	f.t.Helper()
	var m []byte
	err := f.db.View(f.t.Context(), func(tx *store.Tx) error {
		var err error
		m, err = tx.Get(bucketDerive, deriveMasterKey)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// TestDerivedInstanceSecretFormula pins the derivation to the construction derive.go
// documents, computed here independently, so that a change to it (which would give every
// running instance a new value) cannot pass unnoticed.
func TestDerivedInstanceSecretFormula(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	got := f.mustActivate("web", "a").Env["INST"]

	var info []byte
	info = append(info, "cloister-instance-secret-v1\x00"...)
	for _, field := range []string{"web", "inst", `{"type":"symmetric-key","size":128,"per_instance":true}`, "a"} {
		info = append(info, byte(len(field)>>24), byte(len(field)>>16), byte(len(field)>>8), byte(len(field)))
		info = append(info, field...)
	}
	salt := sha256.Sum256(f.c.Root().Raw)
	want, err := hkdf.Key(sha256.New, f.master(), salt[:], string(info), 16)
	if err != nil {
		t.Fatal(err)
	}
	if got != hex.EncodeToString(want) {
		t.Errorf("instance a's value is %s; the documented derivation gives %x", got, want)
	}
	if keys := f.instanceKeys(); len(keys) != 0 {
		t.Errorf("stored per-instance values %v; a derived secret stores nothing", keys)
	}
}

func TestDerivedInstanceSecretsDiffer(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["workloads"].(map[string]any)["other"] = map[string]any{"package": "signed", "env": map[string]string{"INST": "{{.Secrets.inst.Hex}}"}}
	}))
	a := f.mustActivate("web", "a").Env["INST"]
	seen := map[string]string{a: "web/a"}
	for what, v := range map[string]string{
		"web/b":   f.mustActivate("web", "b").Env["INST"],
		"other/a": f.mustActivate("other", "a").Env["INST"],
		// An instance ID that extends another one.
		"web/a.": f.mustActivate("web", "a.").Env["INST"],
		"another deployment, web/a": func() string {
			g := newFixture(t)
			g.setManifest("", testManifest(t, nil))
			return g.mustActivate("web", "a").Env["INST"]
		}(),
	} {
		if prev, ok := seen[v]; ok {
			t.Errorf("%s got the same per-instance value as %s", what, prev)
		}
		seen[v] = what
	}
	if again := f.mustActivate("web", "a").Env["INST"]; again != a {
		t.Errorf("instance a got %s, then %s", a, again)
	}
	f.reopen()
	if again := f.mustActivate("web", "a").Env["INST"]; again != a {
		t.Errorf("instance a got %s before a restart, %s after", a, again)
	}
	// A changed definition regenerates the value; changing it back gives the old one again,
	// as nothing about a derived value is kept.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["inst"] = map[string]any{"type": "symmetric-key", "size": 256, "per_instance": true}
	}))
	changed := f.mustActivate("web", "a").Env["INST"]
	if len(changed) != 64 || changed[:32] == a {
		t.Errorf("after the definition changed to 256 bits, instance a got %s (before: %s)", changed, a)
	}
	f.setManifest("admin", testManifest(t, nil))
	if back := f.mustActivate("web", "a").Env["INST"]; back != a {
		t.Errorf("with the first definition again, instance a got %s, want %s", back, a)
	}
}

// putLegacy stores a per-instance value as versions before derivation did.
func (f *fixture) putLegacy(workload, name, instance string, s manifest.Secret, value []byte) {
	f.t.Helper()
	err := f.db.Update(f.t.Context(), func(tx *store.Tx) error {
		return putJSON(tx, bucketInstances, instanceKey(workload, name, instance), &secretRecord{Spec: specOf(s), Value: value})
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestLegacyInstanceSecrets: values an earlier version stored are served as they are (so a
// running instance keeps its secret across the upgrade), and deleted when the manifest stops
// naming them or changes their definition.
func TestLegacyInstanceSecrets(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, func(m map[string]any) {
		m["workloads"].(map[string]any)["other"] = map[string]any{"package": "signed", "env": map[string]string{"INST": "{{.Secrets.inst.Hex}}"}}
	}))
	inst := manifest.Secret{Type: manifest.SymmetricKey, Size: 128, PerInstance: true}
	legacy := bytes.Repeat([]byte{0xab}, 16)
	f.putLegacy("web", "inst", "old", inst, legacy)
	f.putLegacy("other", "inst", "old", inst, legacy)
	f.putLegacy("web", "gone", "old", inst, legacy) // a secret the manifest no longer has
	// A value stored for another definition is not served.
	f.putLegacy("web", "inst", "stale", manifest.Secret{Type: manifest.SymmetricKey, Size: 256, PerInstance: true}, bytes.Repeat([]byte{1}, 32))
	f.reopen()

	for _, wl := range []string{"web", "other"} {
		if got := f.mustActivate(wl, "old").Env["INST"]; got != hex.EncodeToString(legacy) {
			t.Errorf("%s/old got %s; want its stored value %x", wl, got, legacy)
		}
	}
	if got := f.mustActivate("web", "stale").Env["INST"]; len(got) != 32 || got == hex.EncodeToString(legacy) {
		t.Errorf("web/stale got %s; want a derived 128-bit value", got)
	}
	if got := f.mustActivate("web", "new").Env["INST"]; got == hex.EncodeToString(legacy) {
		t.Errorf("a new instance got the stored value of another")
	}

	// An update that removes workload other: its value goes, as do the values of removed
	// secrets and of other definitions; web/old keeps its value.
	f.setManifest("admin", testManifest(t, nil))
	if keys := f.instanceKeys(); !slices.Equal(keys, []string{"web/inst/old"}) {
		t.Errorf("stored per-instance values after the update: %v; want only web/inst/old", keys)
	}
	if got := f.mustActivate("web", "old").Env["INST"]; got != hex.EncodeToString(legacy) {
		t.Errorf("web/old got %s after an update that kept its definition; want %x", got, legacy)
	}
	// A workload that stops using the secret loses its stored values.
	f.setManifest("admin", testManifest(t, func(m map[string]any) {
		delete(m["workloads"].(map[string]any)["web"].(map[string]any)["env"].(map[string]string), "INST")
	}))
	if keys := f.instanceKeys(); len(keys) != 0 {
		t.Errorf("stored per-instance values after web stopped using inst: %v; want none", keys)
	}
}

// TestPerInstanceCertificatesStored: certificates cannot be derived; they are made once per
// instance, stored, served again, and recorded for the workload-identity check.
func TestPerInstanceCertificatesStored(t *testing.T) {
	f := newFixture(t)
	raw := testManifest(t, func(m map[string]any) {
		m["secrets"].(map[string]any)["icert"] = map[string]any{"type": "certificate", "per_instance": true}
		m["workloads"].(map[string]any)["web"].(map[string]any)["files"].(map[string]string)["/etc/web/icert.pem"] = "{{.Secrets.icert.Cert}}"
	})
	f.setManifest("", raw)
	first := f.mustActivate("web", "a").Files["/etc/web/icert.pem"]
	if again := f.mustActivate("web", "a").Files["/etc/web/icert.pem"]; !bytes.Equal(again, first) {
		t.Errorf("instance a got another certificate at its second activation")
	}
	if other := f.mustActivate("web", "b").Files["/etc/web/icert.pem"]; bytes.Equal(other, first) {
		t.Errorf("instances a and b got the same certificate")
	}
	if keys := f.instanceKeys(); !slices.Equal(keys, []string{"web/icert/a", "web/icert/b"}) {
		t.Errorf("stored per-instance values %v; want the certificates of a and b only", keys)
	}
	var issued int
	err := f.db.View(t.Context(), func(tx *store.Tx) error {
		return tx.ForEach(bucketIssued, func(string, []byte) error { issued++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if issued != 3 { // the shared "cert" and the two per-instance ones
		t.Errorf("%d issued certificates recorded, want 3", issued)
	}
}
