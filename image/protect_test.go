package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/protect"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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
	if _, err := protect.Decrypt(&plain, bytes.NewReader(files["cloister/protected/etc/app/key.pem"]), fileKey, "/etc/app/key.pem"); err != nil || plain.String() != final {
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
		{name: "hard link to an old key of a protected directory", layers: [][]te{{file("bin/app", "a"), file("srv/keys/old", "OLD"), file("srv/keys/cur", "CUR"),
			hardlink("etc/copy", "srv/keys/old")}, {whiteout("srv/keys/.wh.old")}},
			protect: []string{"/srv/keys"}, want: ErrPlaintext, msg: `"/etc/copy": plaintext of a protected file would remain in the image: hard link to /srv/keys/old, whose entry is removed`},
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
		if _, err := protect.Decrypt(&plain, bytes.NewReader(files["cloister/protected/"+p]), fileKey, "/"+p); err != nil || plain.String() != "LINKED-SECRET-0987654321" {
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

// TestOldPlaintextRemoved protects paths whose older plaintext lies in a
// lower layer where the final view no longer shows it: deleted by a
// whiteout or an opaque directory, or under a directory that a symbolic
// link replaced. Every such entry must leave its layer.
func TestOldPlaintextRemoved(t *testing.T) {
	const old, old2 = "OLD-ROTATED-KEY-0123456789abcdef", "OLD-SECOND-KEY-fedcba9876543210"
	for _, tc := range []struct {
		name    string
		layers  [][]te
		protect []string
	}{
		{name: "whiteout in a protected directory", protect: []string{"/srv/keys"}, layers: [][]te{
			{file("bin/app", "a"), file("srv/keys/old.pem", old), file("srv/keys/cur.pem", "CURRENT-KEY-1")},
			{whiteout("srv/keys/.wh.old.pem")}}},
		{name: "opaque protected directory", protect: []string{"/srv/keys"}, layers: [][]te{
			{file("bin/app", "a"), file("srv/keys/old.pem", old), file("srv/keys/sub/old", old2)},
			{whiteout("srv/keys/.wh..wh..opq"), file("srv/keys/new.pem", "NEW-KEY-1")}}},
		{name: "deleted hard link in a protected directory", protect: []string{"/srv/keys"}, layers: [][]te{
			{file("bin/app", "a"), file("srv/keys/old.pem", old), hardlink("srv/keys/old.bak", "srv/keys/old.pem")},
			{whiteout("srv/keys/.wh.old.pem"), whiteout("srv/keys/.wh.old.bak"), file("srv/keys/new.pem", "NEW-KEY-1")}}},
		{name: "deleted hard link elsewhere to an old key", protect: []string{"/srv/keys"}, layers: [][]te{
			{file("bin/app", "a"), file("srv/keys/old.pem", old), hardlink("tmp/copy", "srv/keys/old.pem")},
			{whiteout("srv/keys/.wh.old.pem"), whiteout("tmp/.wh.copy"), file("srv/keys/new.pem", "NEW-KEY-1")}}},
		{name: "file at the requested path, now behind a link", protect: []string{"/app/secret"}, layers: [][]te{
			{file("bin/app", "a"), file("app/secret", old)},
			{whiteout(".wh.app"), file("opt/app/secret", "NEW-SECRET-1"), symlink("app", "opt/app")}}},
		{name: "file at an intermediate expansion", protect: []string{"/app/secret"}, layers: [][]te{
			{file("bin/app", "a"), file("app/secret", old), file("srv/app/secret", old2)},
			{whiteout(".wh.app"), whiteout("srv/.wh.app"), symlink("app", "srv/app"), symlink("srv/app", "/opt/app"), file("opt/app/secret", "NEW-SECRET-1")}}},
		{name: "directory at the requested path, now behind a link", protect: []string{"/app/keys"}, layers: [][]te{
			{file("bin/app", "a"), file("app/keys/k", old), file("app/keys/deep/k", old2)},
			{whiteout(".wh.app"), file("opt/app/keys/k", "NEW-KEY-1"), symlink("app", "opt/app")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, []string{"/bin/app"}, tc.layers...)
			if found := secretsIn(t, img, old); len(found) != 1 {
				t.Fatalf("the scan finds %v in the input; it must find the old key there", found)
			}
			res := convert(t, img, testConfig(t, tc.protect...))
			if found := secretsIn(t, res.Image, old, old2); len(found) > 0 {
				t.Errorf("old plaintext in the converted image: %q", found)
			}
			if err := verifyImage(t, res.Image); err != nil {
				t.Errorf("Verify of the converted image: %v", err)
			}
		})
	}
}

// TestSymlinkInProtectedDirectory protects a directory holding symbolic
// links: a link to an unprotected file or directory stops the conversion,
// naming the link and its target; links to protected files, and links to
// nothing, are kept.
func TestSymlinkInProtectedDirectory(t *testing.T) {
	base := []te{file("bin/app", "a"), file("srv/keys/a.pem", "KEY-A-0123456789"), file("opt/real/db.pass", "DB-PASSWORD-0123456789"),
		file("opt/conf/x", "X")}
	for _, tc := range []struct {
		name    string
		extra   []te
		protect []string
		msg     string // "" means success
	}{
		{name: "link to an unprotected file", extra: []te{symlink("srv/keys/db.pass", "/opt/real/db.pass")}, protect: []string{"/srv/keys"},
			msg: "/srv/keys/db.pass in protected /srv/keys is a symbolic link to /opt/real/db.pass, which is not protected; protect it too"},
		{name: "relative link to an unprotected file", extra: []te{symlink("srv/keys/db.pass", "../../opt/real/db.pass")}, protect: []string{"/srv/keys"},
			msg: "symbolic link to /opt/real/db.pass"},
		{name: "link to an unprotected directory", extra: []te{symlink("srv/keys/conf", "/opt/conf")}, protect: []string{"/srv/keys"},
			msg: "symbolic link to the directory /opt/conf, whose file /opt/conf/x is not protected"},
		{name: "link to a protected file", extra: []te{symlink("srv/keys/db.pass", "/opt/real/db.pass")}, protect: []string{"/srv/keys", "/opt/real/db.pass"}},
		{name: "link to a protected file, protected first", extra: []te{symlink("srv/keys/db.pass", "/opt/real/db.pass")}, protect: []string{"/opt/real", "/srv/keys"}},
		{name: "link inside the directory", extra: []te{symlink("srv/keys/current", "a.pem")}, protect: []string{"/srv/keys"}},
		{name: "dangling link", extra: []te{symlink("srv/keys/gone", "/nowhere")}, protect: []string{"/srv/keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, []string{"/bin/app"}, append(slices.Clone(base), tc.extra...))
			res, err := Convert(context.Background(), source(t, img), testConfig(t, tc.protect...))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Convert: %v", err)
				}
				defer res.Close()
				if found := secretsIn(t, res.Image, "KEY-A-0123456789", "DB-PASSWORD-0123456789"); len(found) > 0 && len(tc.protect) > 1 {
					t.Errorf("plaintext remains: %q", found)
				}
				return
			}
			if !errors.Is(err, ErrPlaintext) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Convert: %v; want ErrPlaintext saying %q", err, tc.msg)
			}
		})
	}
}

// withConfig returns img with its configuration changed by fn.
func withConfig(t *testing.T, img v1.Image, fn func(*v1.ConfigFile)) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	fn(cf)
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlaintextInMetadata puts a protected file's content into the image's
// history, environment, labels and command line, where build tools leave
// build arguments; the conversion must fail and name the field, and
// --redact-history must clear the history.
func TestPlaintextInMetadata(t *testing.T) {
	const token = "sk-live-0123456789abcdef"
	layers := [][]te{{file("bin/app", "a"), file("etc/api.key", token+"\n"), file("etc/pin", "1234\n")}}
	buildkit := func(cf *v1.ConfigFile) {
		cf.History[0].CreatedBy = "RUN |1 TOKEN=" + token + " /bin/sh -c echo $TOKEN > /etc/api.key # buildkit"
		cf.History[0].Comment = "buildkit.dockerfile.v0"
	}
	for _, tc := range []struct {
		name   string
		config func(*v1.ConfigFile)
		redact bool
		msg    string // "" means success
	}{
		{name: "build argument in the history", config: buildkit,
			msg: "the image configuration, field history[0].created_by holds the content of protected /etc/api.key; expected it only in the encrypted file: convert with --redact-history"},
		{name: "history redacted", config: buildkit, redact: true},
		{name: "environment", config: func(cf *v1.ConfigFile) { cf.Config.Env = append(cf.Config.Env, "API_KEY="+token) }, redact: true,
			msg: "field config.Env[2] holds the content of protected /etc/api.key"},
		{name: "label", config: func(cf *v1.ConfigFile) { cf.Config.Labels = map[string]string{"org.example/key": "\"" + token + "\""} }, redact: true,
			msg: `field config.Labels["org.example/key"] holds the content`},
		{name: "command line", config: func(cf *v1.ConfigFile) { cf.Config.Cmd = []string{"--token", token} },
			msg: "the enclave manifest /cloister/enclave.json, field manifest.argv[2] holds the content of protected /etc/api.key"},
		{name: "content shorter than 8 bytes is not searched", config: func(cf *v1.ConfigFile) { cf.Config.Env = append(cf.Config.Env, "PIN=1234") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := withConfig(t, testImage(t, []string{"/bin/app"}, layers...), tc.config)
			cfg := testConfig(t, "/etc/api.key", "/etc/pin")
			cfg.RedactHistory = tc.redact
			res, err := Convert(context.Background(), source(t, img), cfg)
			if tc.msg != "" {
				if !errors.Is(err, ErrPlaintext) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("Convert: %v; want ErrPlaintext saying %q", err, tc.msg)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("the error quotes the protected content: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			defer res.Close()
			if found := secretsIn(t, res.Image, token); len(found) > 0 {
				t.Errorf("plaintext remains: %q", found)
			}
			cf, err := res.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if tc.redact {
				if n := len(cf.History); n != 2 || cf.History[0].CreatedBy != RedactedCreatedBy || cf.History[0].Comment != "buildkit.dockerfile.v0" {
					t.Errorf("history %+v; want the build command redacted, the comment kept, and the converter's entry", cf.History)
				}
			}
		})
	}
}

// TestProtectedFileKeepsAttributes protects a file with extended
// attributes: the encrypted entry keeps its file capabilities and other
// attributes, but not the IMA hash of the plaintext; the enclave manifest
// keeps its mode, setuid included.
func TestProtectedFileKeepsAttributes(t *testing.T) {
	caps := "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "a"), {name: "usr/bin/server", body: "SERVER-BINARY-0123456789", mode: 0o4750,
		pax: map[string]string{"SCHILY.xattr.security.capability": caps, "SCHILY.xattr.user.origin": "build-7",
			"SCHILY.xattr.security.ima": "\x03\x02\x04plaintext-hash", "GOLANG.pkg.version": "1"}}})
	res := convert(t, img, testConfig(t, "/usr/bin/server"))
	ls, _ := res.Image.Layers()
	_, raw := layerFiles(t, ls[len(ls)-1])
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no entry usr/bin/server in the added layer: %v", err)
		}
		if h.Name != "cloister/protected/usr/bin/server" {
			continue
		}
		want := map[string]string{"SCHILY.xattr.security.capability": caps, "SCHILY.xattr.user.origin": "build-7", "GOLANG.pkg.version": "1"}
		got := maps.Clone(h.PAXRecords)
		delete(got, "size") // the encrypted size, if the header needs it
		if !maps.Equal(got, want) {
			t.Errorf("encrypted entry: PAX records %q; want %q", got, want)
		}
		if pf := signedManifest(t, res.Image).Manifest.ProtectedFiles[0]; pf.Mode != 0o4750 {
			t.Errorf("protected file recorded with mode %v; want the original's, 4750", pf.Mode)
		}
		return
	}
}

// TestProtectedTreeKeepsModesAndOwners protects a directory tree: the
// enclave manifest records each file's and each directory's mode and
// numeric owner as the layers have them (0755 root for a directory no
// layer lists); the added layer holds the encrypted copies below
// /cloister/protected and a symbolic link, with the file's owner, at each
// protected path; subdirectories, empty directories and symbolic links of
// the tree stay in the image as they were.
func TestProtectedTreeKeepsModesAndOwners(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{
		file("bin/app", "a"),
		{name: "srv/www/", typ: tar.TypeDir, mode: 0o750, gid: 33},
		{name: "srv/www/index.html", body: "<h1>PROTECTED-INDEX</h1>", mode: 0o644},
		{name: "srv/www/conf/", typ: tar.TypeDir, mode: 0o2750, uid: 33, gid: 33},
		{name: "srv/www/conf/site.conf", body: "PROTECTED-SITE-CONFIG", mode: 0o640, gid: 33},
		{name: "srv/www/empty/", typ: tar.TypeDir, mode: 0o700, uid: 33},
		symlink("srv/www/current", "index.html"),
	})
	res := convert(t, img, testConfig(t, "/srv/www"))
	m := signedManifest(t, res.Image).Manifest
	type attr struct {
		path     string
		mode     enclave.Mode
		uid, gid uint32
	}
	var gotFiles, gotDirs []attr
	for _, f := range m.ProtectedFiles {
		gotFiles = append(gotFiles, attr{f.Path, f.Mode, f.UID, f.GID})
	}
	for _, d := range m.ProtectedDirs {
		gotDirs = append(gotDirs, attr{d.Path, d.Mode, d.UID, d.GID})
	}
	wantFiles := []attr{{"/srv/www/conf/site.conf", 0o640, 0, 33}, {"/srv/www/index.html", 0o644, 0, 0}}
	wantDirs := []attr{{"/srv", 0o755, 0, 0}, {"/srv/www", 0o750, 0, 33}, {"/srv/www/conf", 0o2750, 33, 33}}
	if !slices.Equal(gotFiles, wantFiles) || !slices.Equal(gotDirs, wantDirs) {
		t.Errorf("protected files %v, directories %v;\nwant %v, %v", gotFiles, gotDirs, wantFiles, wantDirs)
	}

	ls, _ := res.Image.Layers()
	_, raw := layerFiles(t, ls[len(ls)-1])
	links := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
			if h.Name == "srv/www/conf/site.conf" && (h.Uid != 0 || h.Gid != 33) {
				t.Errorf("link %s owned by %d:%d; want the file's 0:33", h.Name, h.Uid, h.Gid)
			}
		}
	}
	wantLinks := map[string]string{
		"srv/www/index.html":     enclave.ProtectedDir + "/srv/www/index.html",
		"srv/www/conf/site.conf": enclave.ProtectedDir + "/srv/www/conf/site.conf",
	}
	if !maps.Equal(links, wantLinks) {
		t.Errorf("links in the added layer %v; want %v", links, wantLinks)
	}
	v := mergedView(t, res.Image)
	for p, kind := range map[string]kind{"/srv/www/empty": kindDir, "/srv/www/current": kindSymlink, "/srv/www/conf": kindDir} {
		if n := v.lookup(p); n == nil || n.kind != kind {
			t.Errorf("%s is not kept in the image as a %s", p, kind)
		}
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}
}

// TestProtectRefusesSpecialFiles: a named pipe in a protected directory
// cannot be recreated in memory, so the conversion is refused.
func TestProtectRefusesSpecialFiles(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "a"), file("srv/www/index.html", "PROTECTED-INDEX-0123"),
		rawEntry("srv/www/pipe", tar.TypeFifo)})
	_, err := Convert(t.Context(), source(t, img), testConfig(t, "/srv/www"))
	if want := `protect "/srv/www": /srv/www/pipe is a named pipe; a protected directory may hold regular files, directories and symbolic links only`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Convert = %v; want %q", err, want)
	}
}
