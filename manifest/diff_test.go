package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(d obj)
		want   []Change
	}{
		{"same", func(obj) {}, nil},
		{"explicit defaults", func(d obj) {
			d["$schema"] = "https://cloister.dev/schema/manifest-v1.json"
			d["settings"] = obj{"trust_domain": "cloister.internal", "workload_certificate_validity": "1440m"}
			at(d, "packages", "web")["tcb_statuses"] = arr{"UpToDate", "SWHardeningNeeded"}
			at(d, "packages", "web")["debug"] = false
			at(d, "secrets", "tls")["algorithm"] = "ecdsa-p256"
			at(d, "secrets", "tls")["common_name"] = "tls"
			at(d, "secrets", "upload")["max_size"] = 65536
			at(d, "workloads", "server")["tls"] = obj{"dns": arr{}}
			at(d, "workloads", "server")["argv"] = arr{}
		}, nil},
		{"template changed", func(d obj) { at(d, "workloads", "server", "env")["TOKEN"] = "{{.Secrets.token.Base64}}" },
			[]Change{{"$.workloads.server.env.TOKEN", Changed}}},
		{"env added and file added", func(d obj) {
			at(d, "workloads", "server", "env")["A"] = "x"
			at(d, "workloads", "server")["files"] = obj{"/etc/a b": "x"}
		}, []Change{{"$.workloads.server.env.A", Added}, {`$.workloads.server.files["/etc/a b"]`, Added}}},
		{"workload added", func(d obj) { at(d, "workloads")["worker"] = obj{"package": "db"} },
			[]Change{{"$.workloads.worker", Added}}},
		{"secret removed", func(d obj) { delete(at(d, "secrets"), "tls") },
			[]Change{{"$.secrets.tls", Removed}}},
		{"list changed", func(d obj) { at(d, "roles", "ops")["actions"] = arr{"read"} },
			[]Change{{"$.roles.ops.actions", Changed}}},
		{"advisories restricted", func(d obj) { at(d, "packages", "web")["advisories"] = arr{} },
			[]Change{{"$.packages.web.advisories", Added}}},
		{"identity switched", func(d obj) { at(d, "packages")["web"] = obj{"mrenclave": hexB} }, []Change{
			{"$.packages.web.mrenclave", Changed}, {"$.packages.web.mrsigner", Changed},
			{"$.packages.web.isvprodid", Removed}, {"$.packages.web.min_isvsvn", Removed}}},
		{"svn raised", func(d obj) { at(d, "packages", "web")["min_isvsvn"] = 2 },
			[]Change{{"$.packages.web.min_isvsvn", Changed}}},
		{"document order", func(d obj) {
			at(d, "roles", "ops")["names"] = arr{"upload", "token"}
			at(d, "settings")["trust_domain"] = "example.org"
			at(d, "packages", "db")["debug"] = true
			at(d, "workloads", "server")["max_activations"] = 3
			at(d, "secrets", "token")["per_instance"] = true
			at(d, "roles", "ops")["actions"] = arr{"read"}
		}, []Change{
			{"$.settings.trust_domain", Changed},
			{"$.packages.db.debug", Changed},
			{"$.workloads.server.max_activations", Changed},
			{"$.secrets.token.per_instance", Changed},
			{"$.roles.ops.names", Changed},
			{"$.roles.ops.actions", Changed},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := mustParse(t, marshal(t, baseDoc(t)))
			d := baseDoc(t)
			tc.mutate(d)
			new := mustParse(t, marshal(t, d))
			if diff := cmp.Diff(tc.want, Diff(old, new)); diff != "" {
				t.Errorf("Diff(old, new) mismatch (-want +got):\n%s", diff)
			}
			// The reverse diff has the same paths with added and removed swapped.
			var reverse []Change
			for _, c := range tc.want {
				switch c.Kind {
				case Added:
					c.Kind = Removed
				case Removed:
					c.Kind = Added
				}
				reverse = append(reverse, c)
			}
			if diff := cmp.Diff(reverse, Diff(new, old)); diff != "" {
				t.Errorf("Diff(new, old) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffNil(t *testing.T) {
	m := mustParse(t, []byte(`{"packages": {"p": {"mrenclave": "`+hexA+`"}}, "settings": {"trust_domain": "a.example"}}`))
	want := []Change{{"$.settings.trust_domain", Changed}, {"$.packages.p", Added}}
	if diff := cmp.Diff(want, Diff(nil, m)); diff != "" {
		t.Errorf("Diff(nil, m) mismatch (-want +got):\n%s", diff)
	}
	if got := Diff(nil, nil); got != nil {
		t.Errorf("Diff(nil, nil) = %v; want nil", got)
	}
	if got := Diff(&Manifest{}, mustParse(t, []byte(`{}`))); got != nil {
		t.Errorf("Diff of a zero Manifest and a parsed empty one = %v; want nil", got)
	}
	if s := want[1].String(); s != "added $.packages.p" {
		t.Errorf("Change.String() = %q", s)
	}
}

// TestRoundTrip encodes every valid example with encoding/json and parses it again: the
// result must mean the same (no Diff) though its bytes and digest differ.
func TestRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid examples (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m := mustParse(t, b)
			encoded, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			again := mustParse(t, encoded)
			if d := Diff(m, again); d != nil {
				t.Errorf("round trip changed %v\nencoded: %s", d, encoded)
			}
			if !cmp.Equal(m.SecretsUsedBy("frontend"), again.SecretsUsedBy("frontend")) {
				t.Errorf("round trip changed the secrets used")
			}
		})
	}
}
