package image

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// fuzzLimits keep each fuzz run small.
var fuzzLimits = Limits{MaxLayers: 4, MaxEntries: 256, MaxFileSize: 1 << 20, MaxLayerSize: 4 << 20}.withDefaults()

// layerSeeds are the seed layers of FuzzReadLayer: valid layers of every
// entry kind, and the hostile ones of TestHostileLayers.
func layerSeeds(t testing.TB) map[string][]byte {
	valid := tarBytes(t, dir("./"), dir("bin/"), file("bin/app", "app"), symlink("lib", "usr/lib"),
		hardlink("bin/app2", "bin/app"), file("etc/.wh.gone", ""), file("opt/.wh..wh..opq", ""), te{name: "run/fifo", typ: '6'})
	return map[string][]byte{
		"valid":          valid,
		"valid-gzip":     gz(t, valid),
		"absolute":       tarBytes(t, file("/etc/passwd", "x")),
		"dotdot":         tarBytes(t, file("a/../../b", "x")),
		"hardlink-out":   tarBytes(t, hardlink("x", "../../etc/shadow")),
		"through-link":   tarBytes(t, symlink("etc", "/tmp"), file("etc/passwd", "x")),
		"device":         tarBytes(t, rawEntry("dev2/sda", '4')),
		"not-utf8":       (&rawTar{}).add("bad\xff", '0', 0, "", nil).bytes(),
		"dir-with-data":  (&rawTar{}).add("d/", '5', 4, "", []byte("data")).bytes(),
		"truncated":      (&rawTar{}).add("f", '0', 1<<20, "", []byte("short")).bytes()[:1024],
		"whiteout-empty": tarBytes(t, file("etc/.wh.", "")),
		"cloister":       tarBytes(t, file("cloister/launch", "x")),
		"sparse":         (&rawTar{}).sparse("a", 1<<30).bytes(),
		"long-element":   tarBytes(t, file("opt/"+strings.Repeat("n", 256), "x")),
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzReadLayer in step with layerSeeds;
// run it with -update to rewrite the files.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReadLayer")
	for name, b := range layerSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		p := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v); run go test -run TestFuzzSeeds -update", p, err)
		}
	}
}

// FuzzReadLayer reads arbitrary bytes as a layer (uncompressed, gzip or
// zstd), stacks it and lists its trusted files. It must never panic, fail
// only with the documented errors, and produce only clean absolute paths.
func FuzzReadLayer(f *testing.F) {
	for _, b := range layerSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &srcLayer{open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
		tr := &tracker{}
		li, err := indexLayer(context.Background(), l, &Source{mediaType: types.OCIManifestSchema1}, &fuzzLimits, &budget{}, tr)
		if err != nil {
			if !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrLimit) {
				t.Fatalf("indexLayer: undocumented error %v", err)
			}
			return
		}
		if l.desc.Digest.Hex == "" || l.desc.Size != int64(len(data)) {
			t.Fatalf("the blob's digest and size were not learned: %+v", l.desc)
		}
		for _, e := range li.entries {
			if checkImagePath(e.path) != nil && e.path != "/" {
				t.Fatalf("entry path %q is not absolute and clean", e.path)
			}
		}
		v, err := mergeLayers([]*layerIndex{li})
		if err != nil {
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("mergeLayers: undocumented error %v", err)
			}
			return
		}
		p, err := planProtection(v, []string{"/etc/secret"}, func(string) bool { return false })
		if err != nil && !strings.Contains(err.Error(), "not found") && !errors.Is(err, ErrPlaintext) &&
			!strings.Contains(err.Error(), "expected a regular file") {
			t.Fatalf("planProtection: %v", err)
		}
		if p == nil {
			p = &plan{protected: map[string]*node{}}
		}
		files, err := trustedFiles(v, p, excluder(DefaultExclude))
		if err != nil && !errors.Is(err, ErrUnsafe) {
			t.Fatalf("trustedFiles: undocumented error %v", err)
		}
		for _, f := range files {
			if checkImagePath(f.Path) != nil {
				t.Fatalf("trusted path %q is not absolute and clean", f.Path)
			}
		}
	})
}

// FuzzCleanName checks that every accepted name becomes an absolute, clean
// path below the root, and that cleaning is idempotent.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"etc/passwd", "./etc/", "/etc", "../x", "a/../b", "a//b/./c", ".", "./", "\xff", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := cleanName(name)
		if err != nil {
			if !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrLimit) {
				t.Fatalf("cleanName(%q): undocumented error %v", name, err)
			}
			return
		}
		if p != "/" && checkImagePath(p) != nil || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			t.Fatalf("cleanName(%q) = %q: not an absolute clean path inside the root", name, p)
		}
		if p != "/" {
			if again, err := cleanName(p[1:]); err != nil || again != p {
				t.Fatalf("cleanName(%q) = %q, %v; want %q again", p[1:], again, err, p)
			}
		}
	})
}

// FuzzOpenArchive reads arbitrary bytes as a docker-archive file. It must
// never panic, and an archive it accepts must have consistent layers.
func FuzzOpenArchive(f *testing.F) {
	var real bytes.Buffer
	tag, _ := name.NewTag("localhost/app:1")
	if err := tarball.Write(tag, transportImage(f), &real); err != nil {
		f.Fatal(err)
	}
	f.Add(real.Bytes())
	f.Add([]byte{})
	f.Add(tarBytes(f, file("manifest.json", `[{"Config":"c","Layers":["l"]}]`), file("c", `{"rootfs":{"diff_ids":["sha256:`+strings.Repeat("0", 64)+`"]}}`), file("l", "")))
	f.Add(tarBytes(f, file("manifest.json", `[{"Config":"c","Layers":["a"]}]`), symlink("a", "b"), symlink("b", "a"), file("c", "{}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := readArchive(bytes.NewReader(data), Reference{Transport: TransportDockerArchive, Path: "fuzz.tar"})
		if err != nil {
			return
		}
		if len(s.layers) != len(s.config.RootFS.DiffIDs) {
			t.Fatalf("%d layers, %d diff IDs", len(s.layers), len(s.config.RootFS.DiffIDs))
		}
	})
}
