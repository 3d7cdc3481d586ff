package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
)

// bundleFixture returns a bundle of a verified answer of the fixture's Coordinator, and what
// it is checked with.
func bundleFixture(t testing.TB) (*Bundle, Expect, []byte) {
	f := newQuoteFixture(t)
	resp := f.response(t, f.platform, f.coord, f.root.Cert, f.nonce)
	e := ExpectSimulated(f.platform.Root())
	v, err := VerifyQuoteResponse(resp, nil, f.nonce, e)
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`{"packages":{}}`)
	d := sha256.Sum256(manifest)
	b := NewBundle("coordinator.test:4433", v, &api.Status{ManifestVersion: 3, ManifestDigest: hex.EncodeToString(d[:])}, time.Now())
	return b, e, manifest
}

func results(r *BundleReport) string {
	var s []string
	for _, c := range r.Checks {
		s = append(s, c.Name+"="+c.Result)
	}
	return strings.Join(s, " ")
}

func TestBundleVerify(t *testing.T) {
	b, e, manifest := bundleFixture(t)
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b, err = ParseBundle(raw)
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Bundle, *BundleOptions)
		want string
	}{
		{"as made", func(*Bundle, *BundleOptions) {},
			"certificates=ok quote=ok policy=ok audit_head=ok report_data=ok manifest_file=skipped audit_log=skipped"},
		{"with its manifest", func(_ *Bundle, o *BundleOptions) { o.Manifest = manifest },
			"certificates=ok quote=ok policy=ok audit_head=ok report_data=ok manifest_file=ok audit_log=skipped"},
		{"another manifest", func(_ *Bundle, o *BundleOptions) { o.Manifest = []byte("{}") },
			"certificates=ok quote=ok policy=ok audit_head=ok report_data=ok manifest_file=failed audit_log=skipped"},
		{"another head, signed", func(b *Bundle, _ *BundleOptions) { b.Response.AuditHead.Seq++ },
			"certificates=ok quote=ok policy=ok audit_head=failed report_data=skipped manifest_file=skipped audit_log=skipped"},
		{"another nonce", func(b *Bundle, _ *BundleOptions) { b.Nonce = strings.Repeat("00", 32) },
			"certificates=ok quote=ok policy=ok audit_head=ok report_data=failed manifest_file=skipped audit_log=skipped"},
		{"at a time before the certificate", func(_ *Bundle, o *BundleOptions) { o.At = time.Now().Add(-24 * time.Hour) },
			"certificates=failed quote=skipped policy=skipped audit_head=skipped report_data=skipped manifest_file=skipped audit_log=skipped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *b
			resp := c.Response
			head := *resp.AuditHead
			resp.AuditHead = &head
			c.Response = resp
			var o BundleOptions
			tc.edit(&c, &o)
			rep := c.Verify(e, o)
			if got := results(rep); got != tc.want {
				t.Errorf("checks %s\nwant   %s\n%v", got, tc.want, rep.Err())
			}
			if rep.OK() != !strings.Contains(tc.want, "failed") {
				t.Errorf("OK() = %v", rep.OK())
			}
		})
	}
	wrong := e
	wrong.MinISVSVN = 9
	if rep := b.Verify(wrong, BundleOptions{}); !strings.Contains(results(rep), "policy=failed") || rep.Verified != nil {
		t.Errorf("a Coordinator older than expected: %s", results(rep))
	}
}

func TestParseBundleRefusals(t *testing.T) {
	b, _, _ := bundleFixture(t)
	good, _ := json.Marshal(b)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not JSON", "nope", "not JSON"},
		{"old format", `{"format":"cloister-verification-bundle-v1"}`, "bundles of earlier versions do not carry the audit head"},
		{"unknown field", strings.Replace(string(good), `"format"`, `"extra":1,"format"`, 1), "unknown field"},
		{"trailing data", string(good) + "{}", "after top-level value"},
		{"no head", strings.Replace(string(good), `"audit_head"`, `"audit_head":null,"x_"`, 1), ""},
		{"bad nonce", strings.Replace(string(good), `"nonce":"`, `"nonce":"zz`, 1), "nonce: expected 64 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBundle([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseBundle = %v; want an error with %q", err, tc.want)
			}
		})
	}
}

// FuzzParseBundle checks that ParseBundle never panics, and that what it accepts re-encodes
// to a bundle it accepts again with the same content.
func FuzzParseBundle(f *testing.F) {
	b, _, _ := bundleFixture(f)
	good, _ := json.Marshal(b)
	f.Add(good)
	f.Add([]byte(`{"format":"cloister-verification-bundle-v2"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := ParseBundle(in)
		if err != nil {
			return
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := ParseBundle(again)
		if err != nil {
			t.Fatalf("re-encoded bundle refused: %v", err)
		}
		if b2.Nonce != b.Nonce || b2.Response.AuditHead.Hash != b.Response.AuditHead.Hash || string(b2.Response.Quote) != string(b.Response.Quote) {
			t.Fatal("round trip changed the bundle")
		}
	})
}
