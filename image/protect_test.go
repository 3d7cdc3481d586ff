package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/protect"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// secretsIn returns the secrets found anywhere in img's blobs: the stored
// (compressed) layers, their uncompressed tars, and the configuration.
func secretsIn(t *testing.T, img v1.Image, secrets ...string) []string {
	t.Helper()
	var found []string
	look := func(b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) && !slices.Contains(found, s) {
				found = append(found, s)
			}
		}
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		look(b)
		_, raw := layerFiles(t, l)
		look(raw)
	}
	cfg, _ := img.RawConfigFile()
	look(cfg)
	return found
}

// TestNoPlaintextRemains protects files that appear in several layers (an
// old version, a whiteout, the final version, a protected directory) and
// scans every blob of the output.
func TestNoPlaintextRemains(t *testing.T) {
	const (
		old     = "OLD-SECRET-0123456789abcdef"
		final   = "FINAL-SECRET-fedcba9876543210"
		deleted = "DELETED-SECRET-0011223344556677"
		inDir   = "DIR-SECRET-8899aabbccddeeff"
	)
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "app"), file("etc/app/key.pem", old), file("etc/app/gone.pem", deleted)},
		[]te{file("etc/app/.wh.key.pem", ""), file("etc/app/.wh.gone.pem", "")},
		[]te{file("etc/app/key.pem", final), file("srv/keys/a", inDir), file("srv/keys/sub/b", inDir+"2"), file("opt/public", "public")},
		[]te{file("opt/later", "later")},
	)
	if found := secretsIn(t, img, old, final, inDir); len(found) != 3 {
		t.Fatalf("the scan finds %v in the input; it must find all three secrets there", found)
	}
	res := convert(t, img, testConfig(t, "/etc/app/key.pem", "/srv/keys"))
	if found := secretsIn(t, res.Image, old, final, inDir); len(found) > 0 {
		t.Errorf("plaintext in the converted image: %q", found)
	}
	if res.Report.Layers != (LayerCounts{Copied: 2, Rewritten: 2, Added: 1}) {
		t.Errorf("layers %+v; want layers 1 and 3 rewritten, 2 and 4 copied", res.Report.Layers)
	}
	var paths []string
	for _, p := range res.Report.ProtectedFiles {
		paths = append(paths, p.Path)
	}
	if want := []string{"/etc/app/key.pem", "/srv/keys/a", "/srv/keys/sub/b"}; !slices.Equal(paths, want) {
		t.Errorf("protected %q; want %q", paths, want)
	}
	// Copied layers keep their blobs byte for byte.
	in, _ := img.Layers()
	out, _ := res.Image.Layers()
	for _, i := range []int{1, 3} {
		a, _ := in[i].Digest()
		b, _ := out[i].Digest()
		if a != b {
			t.Errorf("layer %d: digest %s became %s", i+1, a, b)
		}
	}
	// The final version is what is encrypted.
	files, _ := layerFiles(t, out[len(out)-1])
	var plain bytes.Buffer
	if _, err := protect.Decrypt(&plain, bytes.NewReader(files["etc/app/key.pem"]), fileKey, "/etc/app/key.pem"); err != nil || plain.String() != final {
		t.Errorf("decrypted %q, %v; want the final version", plain.String(), err)
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Errorf("Verify of the converted image: %v", err)
	}
}

func verifyImage(t *testing.T, img v1.Image) error {
	_, err := Verify(context.Background(), source(t, img))
	return err
}

// TestProtectThroughSymlinks protects a path reached through symbolic
// links, including ones that try to leave the root.
func TestProtectThroughSymlinks(t *testing.T) {
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "app"), file("opt/app/secret", "S3CRET-THROUGH-LINK-12345"), symlink("app", "opt/app"),
			symlink("etc/conf", "../../../../app/secret")},
	)
	for _, req := range []string{"/app/secret", "/etc/conf", "/opt/app/secret"} {
		res := convert(t, img, testConfig(t, req))
		if p := res.Report.ProtectedFiles; len(p) != 1 || p[0].Path != "/opt/app/secret" {
			t.Errorf("--protect %s protected %+v; want /opt/app/secret", req, p)
		}
		if found := secretsIn(t, res.Image, "S3CRET-THROUGH-LINK-12345"); len(found) > 0 {
			t.Errorf("--protect %s: plaintext remains", req)
		}
	}
}

// TestProtectFailsClosed lists the ways a protected file's plaintext could
// survive, each of which must stop the conversion.
func TestProtectFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		layers  [][]te
		protect []string
		want    error
		msg     string
	}{
		{name: "hard link at an unprotected path", layers: [][]te{{file("bin/app", "a"), file("etc/s", "SECRET"), hardlink("etc/copy", "etc/s")}},
			protect: []string{"/etc/s"}, want: ErrPlaintext, msg: "/etc/copy is a hard link to protected /etc/s"},
		{name: "protected path is a hard link to an unprotected file", layers: [][]te{{file("bin/app", "a"), file("etc/s", "SECRET"), hardlink("etc/link", "etc/s")}},
			protect: []string{"/etc/link"}, want: ErrPlaintext, msg: "/etc/s is a hard link to protected /etc/link"},
		{name: "hard link to an old version", layers: [][]te{{file("bin/app", "a"), file("etc/s", "OLD"), hardlink("etc/old", "etc/s")}, {file("etc/s", "NEW")}},
			protect: []string{"/etc/s"}, want: ErrPlaintext, msg: "whose entry is removed"},
		{name: "identical copy", layers: [][]te{{file("bin/app", "a"), file("etc/s", "SECRET")}, {file("tmp/backup", "SECRET")}},
			protect: []string{"/etc/s"}, want: ErrPlaintext, msg: "the same content as protected /etc/s"},
		{name: "deleted identical copy", layers: [][]te{{file("bin/app", "a"), file("build/s", "SECRET")}, {file("build/.wh.s", ""), file("etc/s", "SECRET")}},
			protect: []string{"/etc/s"}, want: ErrPlaintext, msg: "same content"},
		{name: "missing", layers: [][]te{{file("bin/app", "a")}}, protect: []string{"/etc/s"}, msg: "not found"},
		{name: "not clean", layers: [][]te{{file("bin/app", "a")}}, protect: []string{"/etc//s"}, msg: "clean"},
		{name: "relative", layers: [][]te{{file("bin/app", "a")}}, protect: []string{"etc/s"}, msg: "absolute"},
		{name: "root", layers: [][]te{{file("bin/app", "a")}}, protect: []string{"/bin/.."}, msg: "clean"},
		{name: "empty directory", layers: [][]te{{file("bin/app", "a"), dir("empty/")}}, protect: []string{"/empty"}, msg: "holds no regular files"},
		{name: "excluded", layers: [][]te{{file("bin/app", "a"), file("tmp/s", "S")}}, protect: []string{"/proc/../tmp/s"}, msg: "clean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, []string{"/bin/app"}, tc.layers...)
			_, err := Convert(context.Background(), source(t, img), testConfig(t, tc.protect...))
			if err == nil || !strings.Contains(err.Error(), tc.msg) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Convert: %v; want %q (wrapping %v)", err, tc.msg, tc.want)
			}
		})
	}
}

// TestProtectHardLinkGroup protects every name of a hard-linked file.
func TestProtectHardLinkGroup(t *testing.T) {
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "a"), file("etc/s", "LINKED-SECRET-0987654321"), hardlink("etc/t", "etc/s")})
	res := convert(t, img, testConfig(t, "/etc/s", "/etc/t"))
	if len(res.Report.ProtectedFiles) != 2 {
		t.Fatalf("protected %+v; want /etc/s and /etc/t", res.Report.ProtectedFiles)
	}
	if found := secretsIn(t, res.Image, "LINKED-SECRET-0987654321"); len(found) > 0 {
		t.Error("plaintext remains")
	}
	out, _ := res.Image.Layers()
	files, _ := layerFiles(t, out[len(out)-1])
	for _, p := range []string{"etc/s", "etc/t"} {
		var plain bytes.Buffer
		if _, err := protect.Decrypt(&plain, bytes.NewReader(files[p]), fileKey, "/"+p); err != nil || plain.String() != "LINKED-SECRET-0987654321" {
			t.Errorf("%s: %q, %v", p, plain.String(), err)
		}
	}
}

// TestExcludedProtected refuses to protect an excluded path.
func TestExcludedProtected(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "a"), file("tmp/s", "S")})
	cfg := testConfig(t, "/tmp/s")
	cfg.Exclude = []string{"/tmp/"}
	if _, err := Convert(context.Background(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), "matches an exclude pattern") {
		t.Errorf("Convert: %v", err)
	}
}
