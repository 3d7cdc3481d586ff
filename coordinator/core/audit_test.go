package core

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/audit"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/pki"
	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
)

// export returns the whole audit log of f's Coordinator, verified with its root, and its
// entries.
func (f *fixture) export(seen *audit.Head) ([]*audit.Entry, []byte) {
	f.t.Helper()
	var buf bytes.Buffer
	if _, err := f.c.exportAudit(f.t.Context(), 1, &buf); err != nil {
		f.t.Fatalf("export the audit log: %v", err)
	}
	var entries []*audit.Entry
	if _, err := audit.Verify(bytes.NewReader(buf.Bytes()), audit.VerifyOptions{Root: f.c.Root(), Seen: seen, OnEntry: func(e *audit.Entry) error {
		entries = append(entries, e)
		return nil
	}}); err != nil {
		f.t.Fatalf("the export does not verify: %v\n%s", err, buf.Bytes())
	}
	return entries, buf.Bytes()
}

func kinds(entries []*audit.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Kind)
	}
	return out
}

func TestAuditLogRecordsChanges(t *testing.T) {
	f := newFixture(t)
	hour := f.now.UTC().Truncate(time.Hour)
	entries, _ := f.export(nil)
	if len(entries) != 1 || entries[0].Kind != audit.KindCoordinatorStart {
		t.Fatalf("a new Coordinator's log: %v; want one start entry", kinds(entries))
	}
	start := entries[0]
	for k, want := range map[string]string{"tee": "sgx-simulation", "version": Version, "mrsigner": fmt.Sprintf("%x", [32]byte{}), "isvprodid": "1", "isvsvn": "1", "debug": "false"} {
		if k == "mrsigner" {
			continue // the simulated Coordinator signer; checked by being present
		}
		if start.Fields[k] != want {
			t.Errorf("start entry field %s = %q, want %q", k, start.Fields[k], want)
		}
	}
	if len(start.Fields["mrenclave"]) != 64 || len(start.Fields["mrsigner"]) != 64 || start.Actor != "coordinator" {
		t.Errorf("start entry %+v: want the Coordinator's MRENCLAVE and MRSIGNER, by the coordinator", start)
	}
	head0, err := f.c.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	f.setManifest("", testManifest(t, nil))
	secretValue := "s3cr3t-value-012"
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte(secretValue), "fk": []byte("another-value-42")}); err != nil {
		t.Fatal(err)
	}
	// A refused write changes nothing, so it is not in the log.
	if err := f.c.SetSecrets(t.Context(), as(t, "reader"), map[string][]byte{"upload": []byte("refused-value-77")}); err == nil {
		t.Fatal("reader set a secret")
	}
	for range 3 {
		f.mustActivate("web", "w1")
	}
	f.mustActivate("limited", "l1") // counted in its transaction
	if _, err := f.activate(newRequest(t, "limited", "l2", goodBody())); err == nil {
		t.Fatal("second activation of limited was accepted")
	}
	bad := goodBody()
	bad.ISVSVN = 1
	if _, err := f.activate(newRequest(t, "web", "w2", bad)); err == nil {
		t.Fatal("activation below min_isvsvn accepted")
	}
	if _, err := f.activate(newRequest(t, "no-such-workload", "x", goodBody())); err == nil {
		t.Fatal("unknown workload accepted")
	}
	// Within the hour, a flush keeps the counts open: no activation entry yet.
	if err := f.c.flushCounts(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if entries, _ := f.export(head0); entries[len(entries)-1].Kind == audit.KindActivations {
		t.Fatalf("activation entry written before its hour ended: %v", kinds(entries))
	}
	// The first flush of the next hour closes it: one entry per workload.
	f.now = hour.Add(time.Hour + time.Minute)
	if err := f.c.flushCounts(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	entries, raw := f.export(head0)
	got := map[string]map[string]string{}
	for _, e := range entries {
		if e.Kind == audit.KindActivations {
			if _, dup := got[e.Fields["workload"]]; dup {
				t.Errorf("two activation entries for %s", e.Fields["workload"])
			}
			got[e.Fields["workload"]] = e.Fields
		}
	}
	want := map[string]map[string]string{
		"web":     {"workload": "web", "hour": hour.Format(time.RFC3339), "accepted": "3", "refused.policy_rejected": "1", "total": "4"},
		"limited": {"workload": "limited", "hour": hour.Format(time.RFC3339), "accepted": "1", "refused.activation_limit": "1", "total": "2"},
		"unknown": {"workload": "unknown", "hour": hour.Format(time.RFC3339), "refused.unknown_workload": "1", "total": "1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("activation entries:\n got %v\nwant %v", got, want)
	}
	var sawManifest, sawSecrets bool
	for _, e := range entries {
		switch e.Kind {
		case audit.KindManifestSet:
			sawManifest = true
			if e.Actor != "anonymous" || e.Fields["version"] != "1" || e.Fields["users_added"] != "admin,nobody,reader" || len(e.Fields["manifest_sha256"]) != 64 {
				t.Errorf("manifest entry %+v", e)
			}
		case audit.KindSecretWrite:
			sawSecrets = true
			if e.Actor != "admin" || e.Fields["secrets"] != "fk,upload" || e.Fields["count"] != "2" {
				t.Errorf("secret entry %+v", e)
			}
		}
	}
	if !sawSecrets || (!sawManifest && manifestRecorded) {
		t.Errorf("log %v lacks the manifest or secret entry", kinds(entries))
	}
	for _, v := range []string{secretValue, "another-value-42", "refused-value-77", "plain-value"} {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the export holds the secret value %q", v)
		}
	}

	// A restart continues the chain with a start entry; the head seen before must be in it.
	seen, err := f.c.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.reopen()
	after, _ := f.export(seen)
	if len(after) != len(entries)+1 || after[len(after)-1].Kind != audit.KindCoordinatorStart || after[len(after)-1].Fields["manifest_version"] != "1" {
		t.Errorf("after a restart: %v; want the log before and a start entry", kinds(after))
	}
}

// manifestRecorded is whether SetManifest writes its entry (it is wired in deploy.go).
var manifestRecorded = true

func TestAuditOpenHoursSurviveRestart(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	f.mustActivate("web", "w1")
	f.mustActivate("web", "w1")
	// Run's periodic flush writes the open hour to the store; a crash after it loses nothing.
	if err := f.c.flushCounts(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	f.reopen() // no final flush: as after kill -9
	entries, _ := f.export(nil)
	n := len(entries)
	if n < 2 || entries[n-2].Kind != audit.KindActivations || entries[n-2].Fields["accepted"] != "2" || entries[n-1].Kind != audit.KindCoordinatorStart {
		t.Errorf("after a crash: %v (%v); want the open hour's activations closed, then the start", kinds(entries), entries[n-2].Fields)
	}
}

func TestAuditExportRanges(t *testing.T) {
	f := newFixture(t)
	f.setManifest("", testManifest(t, nil))
	for i := range 5 {
		if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	head, err := f.c.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for from := uint64(1); from <= head.Seq+1; from++ {
		var buf bytes.Buffer
		if _, err := f.c.ExportAudit(t.Context(), as(t, "nobody"), from, &buf); err != nil {
			t.Fatalf("export from %d: %v", from, err)
		}
		rep, err := audit.Verify(&buf, audit.VerifyOptions{Root: f.c.Root()})
		if err != nil || rep.First != from || rep.Last != head.Seq {
			t.Errorf("export from %d: %+v, %v; want entries %d to %d", from, rep, err, from, head.Seq)
		}
	}
	var buf bytes.Buffer
	_, err = f.c.ExportAudit(t.Context(), as(t, "nobody"), head.Seq+2, &buf)
	wantError(t, err, api.CodeBadRequest, fmt.Sprintf("the audit log has entries 1 to %d", head.Seq))
	_, err = f.c.ExportAudit(t.Context(), nil, 1, &buf)
	wantError(t, err, api.CodeUnauthenticated, "reading the audit log needs a client certificate of a manifest user")
	_, err = f.c.ExportAudit(t.Context(), as(t, "stranger"), 1, &buf)
	wantError(t, err, api.CodeUnauthenticated, "belongs to no user")
	if buf.Len() != 0 {
		t.Errorf("a refused export wrote %d bytes", buf.Len())
	}
}

// TestAuditSegments appends across several segments on a small segment size and checks that
// every segment carries the hash before it, and that exports from anywhere verify.
func TestAuditSegments(t *testing.T) {
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	// A bare Core on a new store: just the log, three entries a segment.
	dir := t.TempDir()
	sealer, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "state"), sealer, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &Core{db: db, now: time.Now, root: root, audit: auditState{segment: 3}}
	ctx := t.Context()
	for i := range 10 {
		err := c.db.Update(ctx, func(tx *store.Tx) error {
			return c.record(tx, audit.KindSecretWrite, "admin", map[string]string{"secrets": fmt.Sprint("s", i)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A transaction that rolls back takes its entry with it.
	boom := errors.New("boom")
	if err := c.db.Update(ctx, func(tx *store.Tx) error {
		if err := c.record(tx, audit.KindSecretWrite, "admin", nil); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	head, err := c.AuditHead(ctx)
	if err != nil || head.Seq != 10 {
		t.Fatalf("head %+v, %v; want entry 10", head, err)
	}
	err = c.db.View(ctx, func(tx *store.Tx) error {
		var prev audit.Hash
		for seg := uint64(1); seg <= 4; seg++ {
			b, err := tx.Get(fmt.Sprintf("audit-segment-%08d", seg), "prev")
			if err != nil {
				return err
			}
			if string(b) != prev.String() {
				t.Errorf("segment %d carries %s; the entry before it hashes to %s", seg, b, prev)
			}
			last := min(seg*3, 10)
			e, err := tx.Get(fmt.Sprintf("audit-segment-%08d", seg), entryKey(last))
			if err != nil {
				return err
			}
			prev = audit.HashOf(e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for from := uint64(1); from <= 11; from++ {
		var buf bytes.Buffer
		if _, err := c.exportAudit(ctx, from, &buf); err != nil {
			t.Fatalf("export from %d: %v", from, err)
		}
		if _, err := audit.Verify(&buf, audit.VerifyOptions{Root: root.Cert, Seen: head}); err != nil {
			t.Errorf("export from %d: %v", from, err)
		}
	}
}

// TestAuditHeadCachedAndBound checks that the head is signed once per change of the log and
// that the Coordinator's quote binds it.
func TestAuditHeadCachedAndBound(t *testing.T) {
	f := newFixture(t)
	h1, err := f.c.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	h2, _ := f.c.AuditHead(t.Context())
	if !bytes.Equal(h1.Signature, h2.Signature) || !h1.Time.Equal(h2.Time) {
		t.Errorf("the head was signed again though the log did not change")
	}
	if st := f.c.Status(); st.AuditHead == nil || st.AuditHead.Hash != h1.Hash {
		t.Errorf("status audit head %+v, want %+v", st.AuditHead, h1)
	}
	f.setManifest("", testManifest(t, nil))
	if err := f.c.SetSecrets(t.Context(), as(t, "admin"), map[string][]byte{"upload": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	nonce := [32]byte{7}
	resp, err := f.c.Quote(t.Context(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if resp.AuditHead == nil || resp.AuditHead.Seq <= h1.Seq {
		t.Fatalf("quote's audit head %+v; want an entry after %d", resp.AuditHead, h1.Seq)
	}
	v, err := client.VerifyQuoteResponse(resp, nil, nonce, client.Expect{SGXRoot: platform.Root(), Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatalf("the Coordinator's quote does not verify: %v", err)
	}
	if v.AuditHead.Hash != resp.AuditHead.Hash {
		t.Errorf("verified head %s, want %s", v.AuditHead.Hash, resp.AuditHead.Hash)
	}
}

// TestAuditGovernance checks the entries of every governance step, in order, by whom.
func TestAuditGovernance(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := t.Context()
	next := govManifest(t, 2, func(m map[string]any) {
		m["settings"] = map[string]any{"trust_domain": "next.test"}
		delete(m["users"].(map[string]any), "dan")
	})
	p := f.propose("ann", next)
	if _, err := f.c.CancelManifest(ctx, govUser(t, "ben").cert, p.ID); err != nil {
		t.Fatal(err)
	}
	p = f.propose("cat", next)
	f.mustApprove("ann", p)
	if a := f.mustApprove("ben", p); !a.Applied {
		t.Fatalf("not applied after 2 approvals: %+v", a)
	}
	if _, err := f.c.UpdateSVN(ctx, govUser(t, "ann").cert, "signed", 5); err != nil {
		t.Fatal(err)
	}
	entries, _ := f.export(nil)
	type step struct{ kind, actor, detail string }
	var got []step
	for _, e := range entries {
		d := ""
		switch e.Kind {
		case audit.KindManifestSet, audit.KindManifestApply:
			d = "v" + e.Fields["version"] + " -" + e.Fields["users_removed"] + " +" + e.Fields["users_added"] + " approvers=" + e.Fields["approvers"]
		case audit.KindManifestApprove:
			d = e.Fields["approvals"]
		case audit.KindSVNUpdate:
			d = e.Fields["package"] + " " + e.Fields["min_isvsvn_old"] + "->" + e.Fields["min_isvsvn"] + " v" + e.Fields["version"]
		case audit.KindManifestPropose, audit.KindManifestCancel:
			d = e.Fields["manifest_sha256"][:8]
		}
		got = append(got, step{e.Kind, e.Actor, d})
	}
	dig := p.Digest[:8]
	want := []step{
		{audit.KindCoordinatorStart, "coordinator", ""},
		{audit.KindManifestSet, "anonymous", "v1 - +admin,ann,ben,cat,dan,nobody,reader approvers="},
		{audit.KindManifestPropose, "ann", dig},
		{audit.KindManifestCancel, "ben", dig},
		{audit.KindManifestPropose, "cat", dig},
		{audit.KindManifestApprove, "ann", "1"},
		{audit.KindManifestApprove, "ben", "2"},
		{audit.KindManifestApply, "ben", "v2 -dan + approvers=ann,ben"},
		{audit.KindSVNUpdate, "ann", "signed 3->5 v3"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("governance entries:\n got %v\nwant %v", got, want)
	}
}

// BenchmarkAuditActivationHook measures what the audit log adds to an activation: adding its
// result to the counts of its workload and hour (one map update under the counts lock, which
// the activation count already takes). Compare with BenchmarkActivate.
func BenchmarkAuditActivationHook(b *testing.B) {
	var c counts
	c.total, c.dirty, c.results = map[string]uint64{}, map[string]bool{}, map[actKey]activationCounts{}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		c.mu.Lock()
		c.resultLocked(keyOf("bench", now), activationAccepted)
		c.mu.Unlock()
	}
}

// BenchmarkAuditExportVerify measures exporting a log of 20,000 secret-write entries from the
// store, and verifying the export as cloister audit verify does; it reports entries per second.
func BenchmarkAuditExportVerify(b *testing.B) {
	root, err := pki.NewRoot(pki.RootConfig{TrustDomain: "cloister", Simulation: true})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	sealer, err := seal.NewSimulated(filepath.Join(dir, "seal.key"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "state"), sealer, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := &Core{db: db, now: time.Now, root: root, audit: auditState{segment: defaultAuditSegment}}
	const n = 20_000
	ctx := b.Context()
	for i := 0; i < n; i += 1000 {
		err := db.Update(ctx, func(tx *store.Tx) error {
			for j := range 1000 {
				if err := c.record(tx, audit.KindSecretWrite, "admin", map[string]string{"secrets": fmt.Sprint("s", i+j), "count": "1"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var buf bytes.Buffer
	b.Run("export", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if _, err := c.exportAudit(ctx, 1, &buf); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(buf.Len()))
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := audit.Verify(bytes.NewReader(buf.Bytes()), audit.VerifyOptions{Root: root.Cert}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(buf.Len()))
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
