package audit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// testRoot returns a self-signed root certificate for key.
func testRoot(tb testing.TB, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func ecKey(tb testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// session appends n entries of mixed kinds and returns their encodings and the chain.
func session(tb testing.TB, n int) ([][]byte, *Chain) {
	tb.Helper()
	c := &Chain{}
	kinds := []string{KindManifestSet, KindSecretWrite, KindActivations, KindManifestApprove}
	var out [][]byte
	for i := range n {
		e := &Entry{Time: t0.Add(time.Duration(i) * time.Second), Kind: kinds[i%len(kinds)], Actor: "alice",
			Fields: map[string]string{"name": fmt.Sprintf("item-%d", i), "note": "<&> ünïcode"}}
		b, _, err := c.Append(e)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out, c
}

// export writes entries[from-1:] with a head signed by key.
func export(tb testing.TB, entries [][]byte, from int, head *Head) []byte {
	tb.Helper()
	var prev Hash
	if from > 1 {
		prev = HashOf(entries[from-2])
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, uint64(from), prev)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries[from-1:] {
		if err := w.Entry(e); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(head); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyRoundTrip(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"ecdsa": ecKey(t), "ed25519": edKey, "rsa": rsaKey} {
		t.Run(name, func(t *testing.T) {
			root := testRoot(t, key)
			entries, c := session(t, 50)
			head, err := c.Head(t0.Add(time.Hour), key)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(bytes.NewReader(export(t, entries, 1, head)), VerifyOptions{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if rep.First != 1 || rep.Last != 50 || rep.Head.Seq != 50 || rep.Kinds[KindManifestSet] != 13 {
				t.Errorf("report = %+v", rep)
			}
			// A later segment, checked against a head seen in the middle.
			seen, _ := Resume(20, HashOf(entries[19]), t0).Head(t0.Add(time.Minute), key)
			rep, err = Verify(bytes.NewReader(export(t, entries, 21, head)), VerifyOptions{Root: root, Seen: seen})
			if err != nil || !rep.SeenChecked || rep.First != 21 {
				t.Fatalf("segment from 21 with seen head 20: %+v, %v", rep, err)
			}
		})
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	key := ecKey(t)
	root := testRoot(t, key)
	entries, c := session(t, 50)
	head, _ := c.Head(t0.Add(time.Hour), key)
	good := export(t, entries, 1, head)
	lines := strings.SplitAfter(string(good), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	edit := func(f func(ls []string) []string) []byte { return join(f(append([]string(nil), lines...))) }

	// An entry changed in place, still well-formed and canonical.
	changed := edit(func(ls []string) []string {
		ls[17] = strings.Replace(ls[17], `"item-16"`, `"item-XX"`, 1)
		return ls
	})
	forged := &Entry{Seq: 99, Time: t0, Kind: KindSecretWrite, Actor: "mallory", Prev: HashOf(entries[9])}
	forgedLine, _ := forged.Encode()
	otherKey := ecKey(t)
	otherHead, _ := c.Head(t0.Add(time.Hour), otherKey)

	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"changed", changed, "line 19: entry 18: prev is"},
		{"dropped", edit(func(ls []string) []string { return append(ls[:11], ls[12:]...) }), "line 12: entry 12: expected entry 11"},
		{"reordered", edit(func(ls []string) []string { ls[5], ls[6] = ls[6], ls[5]; return ls }), "line 6: entry 6: expected entry 5"},
		{"inserted", edit(func(ls []string) []string {
			return append(ls[:11], append([]string{string(forgedLine) + "\n"}, ls[11:]...)...)
		}), "line 12: entry 99: expected entry 11"},
		{"last dropped", edit(func(ls []string) []string { return append(ls[:50], ls[51:]...) }), "head names entry 50"},
		{"head by another key", export(t, entries, 1, otherHead), "signature does not verify"},
		{"no head", edit(func(ls []string) []string { return ls[:51] }), "ends without a head"},
		{"data after head", append(append([]byte(nil), good...), "{}\n"...), "data after the head"},
		{"no header", edit(func(ls []string) []string { return ls[1:] }), "line 1: expected the header"},
		{"not canonical", edit(func(ls []string) []string { ls[3] = strings.Replace(ls[3], `,"kind"`, `, "kind"`, 1); return ls }),
			"line 4: audit: entry 3 is not in its canonical encoding"},
		{"unknown field", edit(func(ls []string) []string { ls[3] = strings.Replace(ls[3], `{"seq"`, `{"x":1,"seq"`, 1); return ls }),
			`unknown field "x"`},
		{"too long", append([]byte(lines[0]), bytes.Repeat([]byte("a"), MaxEntrySize+2000)...), "longer than"},
		{"empty", nil, "line 1: expected the header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tt.input), VerifyOptions{Root: root})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v; want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestVerifySeenHead(t *testing.T) {
	key := ecKey(t)
	root := testRoot(t, key)
	entries, c := session(t, 30)
	head, _ := c.Head(t0.Add(time.Hour), key)

	// A fork: the same first 10 entries, then a different history.
	fork := &Chain{}
	var forkEntries [][]byte
	for i := range 30 {
		e := &Entry{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindManifestSet, Actor: "alice"}
		if i < 10 {
			pe, _ := ParseEntry(entries[i])
			e = pe
		}
		b, _, err := fork.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		forkEntries = append(forkEntries, b)
	}
	forkHead, _ := fork.Head(t0.Add(time.Hour), key)
	seen20, _ := Resume(20, HashOf(entries[19]), t0).Head(t0.Add(time.Minute), key)
	seen5, _ := Resume(5, HashOf(entries[4]), t0).Head(t0.Add(time.Minute), key)
	seen40, _ := Resume(40, Hash{1}, t0).Head(t0.Add(time.Minute), key)
	unsigned := *seen20
	unsigned.Signature = nil

	tests := []struct {
		name    string
		input   []byte
		seen    *Head
		want    string // "" means accepted
		checked bool
	}{
		{"extends", export(t, entries, 1, head), seen20, "", true},
		{"seen before segment start", export(t, entries, 11, head), seen5, "export from entry 6 or earlier", false},
		{"seen just before segment", export(t, entries, 6, head), seen5, "", true},
		{"forks after 10", export(t, forkEntries, 1, forkHead), seen20, "line 21: the log forks from the head you saw: entry 20", false},
		{"same up to 5", export(t, forkEntries, 1, forkHead), seen5, "", true},
		{"rolled back", export(t, entries, 1, head), seen40, "before the head you saw (entry 40): it was truncated or rolled back", false},
		{"seen head unsigned", export(t, entries, 1, head), &unsigned, "the head you saw before", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(bytes.NewReader(tt.input), VerifyOptions{Root: root, Seen: tt.seen})
			if tt.want == "" {
				if err != nil || rep.SeenChecked != tt.checked {
					t.Fatalf("Verify = %+v, %v; want accepted, SeenChecked %v", rep, err, tt.checked)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestChainTimesNeverDecrease(t *testing.T) {
	c := &Chain{}
	if _, _, err := c.Append(&Entry{Time: t0, Kind: KindCoordinatorStart, Actor: "coordinator"}); err != nil {
		t.Fatal(err)
	}
	e := &Entry{Time: t0.Add(-time.Hour), Kind: KindSecretWrite, Actor: "alice"}
	if _, _, err := c.Append(e); err != nil {
		t.Fatal(err)
	}
	if !e.Time.Equal(t0) || e.Seq != 2 {
		t.Errorf("entry after a clock step back: seq %d time %v; want 2 at %v", e.Seq, e.Time, t0)
	}
}

func TestEntryRules(t *testing.T) {
	c := &Chain{}
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{"no kind", Entry{Time: t0, Actor: "a"}, `kind "": empty`},
		{"control in actor", Entry{Time: t0, Kind: "k", Actor: "a\nb"}, "contains a control character"},
		{"long field", Entry{Time: t0, Kind: "k", Actor: "a", Fields: map[string]string{"x": strings.Repeat("v", 5000)}}, `field "x": expected at most 4096`},
		{"too many fields", Entry{Time: t0, Kind: "k", Actor: "a", Fields: manyFields(65)}, "fields: 65; expected at most 64"},
		{"no time", Entry{Kind: "k", Actor: "a"}, "expected a UTC time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := c.Append(&tt.e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Append = %v; want %q", err, tt.want)
			}
			if c.Seq() != 0 {
				t.Fatalf("a refused entry advanced the chain to %d", c.Seq())
			}
		})
	}
}

func manyFields(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("f", i)] = "v"
	}
	return m
}

func BenchmarkAppend(b *testing.B) {
	c := &Chain{}
	b.ReportAllocs()
	for b.Loop() {
		e := &Entry{Time: t0, Kind: KindActivations, Actor: "coordinator",
			Fields: map[string]string{"workload": "web", "hour": "2026-12-03T10", "accepted": "1234", "refused": "5"}}
		if _, _, err := c.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify10k(b *testing.B) {
	key := ecKey(b)
	root := testRoot(b, key)
	entries, c := session(b, 10_000)
	head, _ := c.Head(t0.Add(time.Hour), key)
	data := export(b, entries, 1, head)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(data), VerifyOptions{Root: root}); err != nil {
			b.Fatal(err)
		}
	}
}
