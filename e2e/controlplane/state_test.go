package controlplane

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// snapshot returns every regular file below dir by relative path.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	for rel, b := range snapshot(t, src) {
		fi, err := os.Stat(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		e2etest.WriteFile(t, filepath.Join(dst, rel), b, fi.Mode().Perm())
	}
}

// flipAfter flips one byte a few bytes after every occurrence of key in the file: in a bbolt
// leaf page a value follows its key, so this damages the stored (encrypted) value of key.
func flipAfter(t *testing.T, path, key string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(key))
		if j < 0 {
			break
		}
		b[i+j+len(key)+8] ^= 0xff
		i += j + len(key)
		n++
	}
	if n == 0 {
		t.Fatalf("%s does not contain %q", path, key)
	}
	e2etest.WriteFile(t, path, b, 0o600)
}

// TestCorruptStateRefused damages a stopped Coordinator's state in several ways. Each time
// the Coordinator refuses to start with an error that names the problem, and leaves every file
// in its data directory byte for byte as it found them. The undamaged original still starts.
func TestCorruptStateRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.NewPlatform(t, "platform")
	data := e.Path("data")
	co := e.StartCoordinator(t, "coordinator", p, data, nil)
	v, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"secrets": map[string]any{"key": map[string]any{"type": "symmetric-key", "size": 256}}}
	if _, err := client.New(co.Addrs.Client, v.Root).SetManifest(t.Context(), e2etest.WriteJSON(t, e.Path("manifest.json"), m)); err != nil {
		t.Fatalf("set manifest: %v", err)
	}
	co.Stop(t)
	// Another deployment's files, to swap in.
	other := e.StartCoordinator(t, "coordinator-other", p, e.Path("data-other"), nil)
	other.Stop(t)

	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		want    []string
	}{{
		name:    "flipped bytes in a stored value",
		corrupt: func(t *testing.T, dir string) { flipAfter(t, filepath.Join(dir, "state.db"), "tls-key") },
		want:    []string{"stored value failed authentication (corrupted or tampered)", `key "tls-key"`},
	}, {
		name: "flipped bytes in both bbolt meta pages",
		corrupt: func(t *testing.T, dir string) {
			path := filepath.Join(dir, "state.db")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pageSize := int(binary.LittleEndian.Uint32(b[16+8:])) // page header, magic, version
			b[16] ^= 0xff
			b[pageSize+16] ^= 0xff
			e2etest.WriteFile(t, path, b, 0o600)
		},
		want: []string{"state.db is not a usable bbolt database; it was left unchanged"},
	}, {
		name: "truncated state.db",
		corrupt: func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "state.db"), 3*4096); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"state.db is truncated: 12288 bytes, its header says at least", "it was left unchanged"},
	}, {
		name: "data-key.json of another store",
		corrupt: func(t *testing.T, dir string) {
			copyFile(t, e.Path("data-other", "data-key.json"), filepath.Join(dir, "data-key.json"))
		},
		want: []string{`data-key.json cannot be unsealed by this "simulation" sealer`},
	}, {
		name: "data-key.json and seal key of another store",
		corrupt: func(t *testing.T, dir string) {
			copyFile(t, e.Path("data-other", "data-key.json"), filepath.Join(dir, "data-key.json"))
			copyFile(t, e.Path("data-other", "simulation-seal.key"), filepath.Join(dir, "simulation-seal.key"))
		},
		want: []string{"the data key in data-key.json does not decrypt state.db's check record: the two files belong to different stores; both were left unchanged"},
	}, {
		name: "data-key.json not JSON",
		corrupt: func(t *testing.T, dir string) {
			e2etest.WriteFile(t, filepath.Join(dir, "data-key.json"), []byte("{garbage"), 0o600)
		},
		want: []string{"data-key.json is not valid"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := e.Path("damaged", strings.ReplaceAll(tc.name, " ", "-"))
			copyDir(t, data, dir)
			tc.corrupt(t, dir)
			before := snapshot(t, dir)
			code, out := e.RunFailingCoordinator(t, "coordinator on "+tc.name, p, dir)
			if code != 1 {
				t.Errorf("the Coordinator exited with code %d on damaged state, want 1", code)
			}
			if i := strings.LastIndex(out, "cloister: "); i >= 0 {
				t.Logf("refused: %s", strings.TrimSpace(out[i:]))
			}
			for _, w := range append([]string{"cloister: "}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("the Coordinator's output does not say %q:\n%s", w, out)
				}
			}
			after := snapshot(t, dir)
			for name, b := range before {
				if !bytes.Equal(after[name], b) {
					t.Errorf("%s changed when the Coordinator refused to start", name)
				}
			}
			for name := range after {
				if _, ok := before[name]; !ok {
					t.Errorf("the Coordinator created %s when it refused to start", name)
				}
			}
		})
	}

	t.Run("control: the undamaged state starts", func(t *testing.T) {
		co.Start(t, nil)
		v2, err := client.Verify(t.Context(), co.Addrs.Client, co.Expect())
		if err != nil {
			t.Fatal(err)
		}
		if !v2.Root.Equal(v.Root) {
			t.Errorf("the deployment root changed across the restart")
		}
		st, err := client.New(co.Addrs.Client, v.Root).Status(t.Context())
		if err != nil || st.State != api.StateRunning || st.ManifestVersion != 1 {
			t.Errorf("status after restart: %+v, %v; want running version 1", st, err)
		}
		co.Stop(t)
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	e2etest.WriteFile(t, dst, b, 0o600)
}
