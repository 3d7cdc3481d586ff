package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// withVolumes returns img with the VOLUME paths in its configuration.
func withVolumes(t *testing.T, img v1.Image, paths ...string) v1.Image {
	return withConfig(t, img, func(cf *v1.ConfigFile) {
		cf.Config.Volumes = map[string]struct{}{}
		for _, p := range paths {
			cf.Config.Volumes[p] = struct{}{}
		}
	})
}

// addedEntries returns the headers of the added layer of img, in order.
func addedEntries(t *testing.T, img v1.Image) []*tar.Header {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	_, raw := layerFiles(t, ls[len(ls)-1])
	var out []*tar.Header
	tr := tar.NewReader(bytes.NewReader(raw))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		out = append(out, h)
	}
	return out
}

func headerNamed(hs []*tar.Header, name string) *tar.Header {
	for _, h := range hs {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// TestUnmeasuredVolumes: the image's VOLUME paths and --writable paths are
// left unmeasured (directory-prefix excludes), reported with the files
// left there, resolved through symbolic links; their content stays.
func TestUnmeasuredVolumes(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{
		file("bin/app", "app"), file("data/a", "a"), file("data/sub/b", "b"), file("srv/state/s", "s"),
		file("opt/real/c", "c"), symlink("link", "opt/real"), file("etc/conf", "conf"),
	})
	img = withVolumes(t, img, "/data", "/link/", "/empty", "data/sub")
	cfg := testConfig(t)
	cfg.Writable = []string{"/srv/state", "/data"}
	res := convert(t, img, cfg)
	want := []Unmeasured{
		{Path: "/data", Reason: ReasonVolume, Files: 2},
		{Path: "/data/sub", Reason: ReasonVolume, Files: 1},
		{Path: "/empty", Reason: ReasonVolume},
		{Path: "/opt/real", Reason: ReasonVolume, Files: 1},
		{Path: "/srv/state", Reason: ReasonWritable, Files: 1},
	}
	if diff := cmp.Diff(want, res.Report.Unmeasured); diff != "" {
		t.Errorf("unmeasured (-want +got):\n%s", diff)
	}
	m := signedManifest(t, res.Image).Manifest
	for _, pat := range []string{"/data/", "/data/sub/", "/empty/", "/opt/real/", "/srv/state/"} {
		if !slices.Contains(m.Exclude, pat) {
			t.Errorf("exclude %q missing from %q", pat, m.Exclude)
		}
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if wantFiles := []string{"/bin/app", "/etc/conf"}; !slices.Equal(paths, wantFiles) {
		t.Errorf("trusted files %q; want %q", paths, wantFiles)
	}
	v := mergedView(t, res.Image)
	for _, p := range []string{"/data/a", "/data/sub/b", "/srv/state/s", "/opt/real/c"} {
		if n := v.lookup(p); n == nil || n.kind != kindFile {
			t.Errorf("%s is no longer in the image", p)
		}
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}
	if len(res.Report.Warnings) != 0 {
		t.Errorf("warnings %q; want none", res.Report.Warnings)
	}
}

// TestProtectOnWritableRefused: a protected path that is, contains or lies
// inside a VOLUME, a writable path or an encrypted volume is refused
// before anything is written, with the reason and the right option.
func TestProtectOnWritableRefused(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{
		file("bin/app", "app"), file("var/lib/db/main/pg.conf", "PG-CONFIG-0123456789"), file("etc/app/key", "KEY-0123456789abcdef"),
		file("srv/state/f", "STATE-0123456789"), file("opt/x/y", "Y-0123456789abcdef"), symlink("db", "var/lib/db"),
	})
	for _, tc := range []struct {
		name, protect string
		volumes       []string
		writable      []string
		encrypted     []string
		want          string
	}{
		{"volume", "/var/lib/db/main", []string{"/var/lib/db/main"}, nil, nil, "/var/lib/db/main is the image's VOLUME /var/lib/db/main"},
		{"inside volume", "/var/lib/db/main/pg.conf", []string{"/var/lib/db"}, nil, nil, "lies inside the image's VOLUME /var/lib/db"},
		{"contains volume", "/var/lib", []string{"/var/lib/db/main"}, nil, nil, "contains the image's VOLUME /var/lib/db/main"},
		{"through a link", "/db/main/pg.conf", []string{"/var/lib/db/main"}, nil, nil, "/db/main/pg.conf (/var/lib/db/main/pg.conf) lies inside"},
		{"writable", "/srv/state/f", nil, []string{"/srv/state"}, nil, "the writable path (--writable) /srv/state"},
		{"encrypted volume", "/opt/x", nil, nil, []string{"/opt/x/new"}, "contains the encrypted volume /opt/x/new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.protect)
			cfg.Writable, cfg.EncryptedVolumes = tc.writable, tc.encrypted
			_, err := Convert(t.Context(), source(t, withVolumes(t, img, tc.volumes...)), cfg)
			for _, want := range []string{tc.want, "protected content is read-only (its plaintext lives only in memory and changes are lost)", "--encrypted-volume PATH"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Convert = %v; want %q", err, want)
				}
			}
			if left, _ := os.ReadDir(cfg.TempDir); len(left) != 0 {
				t.Errorf("left in the temporary directory: %v", left)
			}
		})
	}
}

// TestEncryptedVolumeEmpty: an encrypted volume the image has no content
// for is recorded with its directory's attributes (0755 root when the
// image has none), keyed by the volume key, and admitted in the printed
// entry with a key the Coordinator generates; no file key is needed.
func TestEncryptedVolumeEmpty(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"),
		{name: "data/", typ: tar.TypeDir, mode: 0o750, uid: 70, gid: 71, uname: "db", gname: "dbg"}})
	img = withVolumes(t, img, "/data")
	cfg := testConfig(t)
	cfg.FileKey = nil
	cfg.EncryptedVolumes = []string{"/new", "/data"}
	res := convert(t, img, cfg)
	m := signedManifest(t, res.Image).Manifest
	want := []enclave.Volume{
		{Path: "/data", Key: DefaultVolumeKeyName, Mode: 0o750, UID: 70, GID: 71},
		{Path: "/new", Key: DefaultVolumeKeyName, Mode: 0o755},
	}
	if diff := cmp.Diff(want, m.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if len(res.Report.Unmeasured) != 0 || len(res.Report.Volumes) != 2 {
		t.Errorf("report: unmeasured %+v, volumes %+v; want the VOLUME /data as an encrypted volume only", res.Report.Unmeasured, res.Report.Volumes)
	}
	s := res.Report.Snippet("db")
	if w := s.Workloads["db"]; !slices.Equal(w.FileKeys, []string{DefaultVolumeKeyName}) ||
		s.Secrets[DefaultVolumeKeyName] != (SnippetSecret{Type: SecretSymmetricKey, Size: 256}) {
		t.Errorf("snippet %+v; want the volume key in file_keys and as a 256-bit symmetric key", s)
	}
	hs := addedEntries(t, res.Image)
	if h := headerNamed(hs, "data/"); h == nil || h.Mode != 0o750 || h.Uid != 70 || h.Gid != 71 || h.Uname != "db" || h.Gname != "dbg" {
		t.Errorf("added layer: directory data/ %+v; want the image's 0750 70:71 db:dbg", h)
	}
	if h := headerNamed(hs, "data/"+whiteoutOpaque); h != nil {
		t.Error("an empty volume got an opaque whiteout")
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}

	// Another volume key name reaches the Gramine mount and the manifest.
	cfg.VolumeKeyName = "pg_volume"
	res = convert(t, img, cfg)
	if g := string(layerFile(t, res.Image, "cloister/gramine.manifest")); !strings.Contains(g, `{ type = "encrypted", path = "/data", uri = "file:/data", key_name = "pg_volume" }`) {
		t.Errorf("Gramine manifest without the volume key's mount:\n%s", g)
	}
}

// layerFile returns a file of the added layer of img.
func layerFile(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	ls, _ := img.Layers()
	files, _ := layerFiles(t, ls[len(ls)-1])
	return files[name]
}

// TestEncryptedVolumeSeeded: content the image holds at an encrypted
// volume (a data directory initialised at build time) moves to the seed
// path, keeping modes, owners, times, symbolic links and hard links, and
// is measured there; the volume directory is left empty in the converted
// image (an opaque whiteout), with its attributes.
func TestEncryptedVolumeSeeded(t *testing.T) {
	pg := func(e te) te {
		e.uid, e.gid, e.uname, e.gname, e.mtime = 104, 105, "postgres", "postgres", 1700000000
		return e
	}
	img := testImage(t, []string{"/bin/app"},
		[]te{file("bin/app", "app"), pg(te{name: "var/lib/pg/", typ: tar.TypeDir, mode: 0o755}),
			pg(te{name: "var/lib/pg/main/", typ: tar.TypeDir, mode: 0o700}),
			pg(te{name: "var/lib/pg/main/PG_VERSION", body: "15\n", mode: 0o600}),
			pg(te{name: "var/lib/pg/main/base/", typ: tar.TypeDir, mode: 0o700}),
			pg(te{name: "var/lib/pg/main/base/1", body: "old", mode: 0o600})},
		[]te{pg(te{name: "var/lib/pg/main/base/1", body: "table-one", mode: 0o600}),
			pg(te{name: "var/lib/pg/main/base/link", typ: tar.TypeLink, link: "var/lib/pg/main/base/1"}),
			pg(te{name: "var/lib/pg/main/current", typ: tar.TypeSymlink, link: "base/1"}),
			pg(te{name: "var/lib/pg/main/empty/", typ: tar.TypeDir, mode: 0o750})},
	)
	img = withVolumes(t, img, "/var/lib/pg/main")
	cfg := testConfig(t)
	cfg.EncryptedVolumes = []string{"/var/lib/pg/main"}
	res := convert(t, img, cfg)
	m := signedManifest(t, res.Image).Manifest
	if want := []enclave.Volume{{Path: "/var/lib/pg/main", Key: DefaultVolumeKeyName, Seed: true, Mode: 0o700, UID: 104, GID: 105}}; !cmp.Equal(m.Volumes, want) {
		t.Errorf("volumes %+v; want %+v", m.Volumes, want)
	}
	seed := enclave.SeedPath("/var/lib/pg/main")
	got := map[string]enclave.Digest{}
	for _, f := range m.Files {
		got[f.Path] = f.SHA256
	}
	sum := func(s string) enclave.Digest { return sha256.Sum256([]byte(s)) }
	want := map[string]enclave.Digest{"/bin/app": sum("app"), seed + "/PG_VERSION": sum("15\n"),
		seed + "/base/1": sum("table-one"), seed + "/base/link": sum("table-one")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trusted files (-want +got):\n%s", diff)
	}
	if len(res.Report.Unmeasured) != 0 || len(res.Report.Warnings) != 0 {
		t.Errorf("unmeasured %+v, warnings %q; want none", res.Report.Unmeasured, res.Report.Warnings)
	}
	if rv := res.Report.Volumes; len(rv) != 1 || rv[0].SeedPath != seed || rv[0].SeedFiles != 3 || rv[0].SeedBytes != 3+9+9 {
		t.Errorf("report volumes %+v; want the seed with 3 files of 21 bytes", rv)
	}

	hs := addedEntries(t, res.Image)
	idx := func(name string) int { return slices.IndexFunc(hs, func(h *tar.Header) bool { return h.Name == name }) }
	at := time.Unix(1700000000, 0)
	for name, want := range map[string]tar.Header{
		"var/lib/pg/":                              {Typeflag: tar.TypeDir, Mode: 0o755},
		"var/lib/pg/main/":                         {Typeflag: tar.TypeDir, Mode: 0o700},
		"var/lib/pg/main/" + whiteoutOpaque:        {Typeflag: tar.TypeReg},
		"cloister/seed/var/lib/pg/main/":           {Typeflag: tar.TypeDir, Mode: 0o700},
		"cloister/seed/var/lib/pg/main/PG_VERSION": {Typeflag: tar.TypeReg, Mode: 0o600},
		"cloister/seed/var/lib/pg/main/base/1":     {Typeflag: tar.TypeReg, Mode: 0o600},
		"cloister/seed/var/lib/pg/main/base/link":  {Typeflag: tar.TypeLink, Mode: 0o600, Linkname: "cloister/seed/var/lib/pg/main/base/1"},
		"cloister/seed/var/lib/pg/main/current":    {Typeflag: tar.TypeSymlink, Mode: 0o644, Linkname: "base/1"},
		"cloister/seed/var/lib/pg/main/empty/":     {Typeflag: tar.TypeDir, Mode: 0o750},
		"cloister/seed/var/lib/pg/main/base/":      {Typeflag: tar.TypeDir, Mode: 0o700},
	} {
		h := headerNamed(hs, name)
		switch {
		case h == nil:
			t.Errorf("added layer: no entry %s", name)
		case h.Typeflag != want.Typeflag || h.Mode != want.Mode || h.Linkname != want.Linkname:
			t.Errorf("added layer: %s is type %c mode %o link %q; want %c %o %q", name, h.Typeflag, h.Mode, h.Linkname, want.Typeflag, want.Mode, want.Linkname)
		case !strings.HasSuffix(name, whiteoutOpaque) && (h.Uid != 104 || h.Gid != 105 || h.Uname != "postgres" || !h.ModTime.Equal(at)):
			t.Errorf("added layer: %s owned by %d:%d (%s) at %v; want the image's 104:105 postgres at %v", name, h.Uid, h.Gid, h.Uname, h.ModTime, at)
		}
	}
	if idx("var/lib/pg/main/") > idx("var/lib/pg/main/"+whiteoutOpaque) || idx("var/lib/pg/") > idx("var/lib/pg/main/") ||
		idx("cloister/seed/var/lib/pg/main/base/1") > idx("cloister/seed/var/lib/pg/main/base/link") {
		t.Error("added layer: parents or link targets come after what needs them")
	}
	v := mergedView(t, res.Image)
	if n := v.lookup("/var/lib/pg/main"); n == nil || n.kind != kindDir || len(n.children) != 0 {
		t.Errorf("/var/lib/pg/main in the converted image: %+v; want an empty directory", n)
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}
	// Reproducible.
	again := convert(t, img, cfg)
	if a, b := must(res.Image.Digest()), must(again.Image.Digest()); a != b {
		t.Errorf("two conversions with a seed: %s and %s", a, b)
	}
}

// TestEncryptedVolumeRefusals: a volume that is a file, volumes that nest,
// and a seed holding a device or a named pipe are refused.
func TestEncryptedVolumeRefusals(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("full/x", "x"), file("afile", "f"),
		rawEntry("dev-data/null", tar.TypeChar), rawEntry("fifo-data/p", tar.TypeFifo)})
	for _, tc := range []struct {
		volumes []string
		want    string
	}{
		{[]string{"/afile"}, "encrypted volume /afile: /afile is a regular file in the image; expected a directory or nothing"},
		{[]string{"/full", "/full/sub"}, "encrypted volumes /full and /full/sub: the second lies inside the first"},
		{[]string{"/dev-data"}, "/dev-data/null is a device node; a volume seeded from the image may hold regular files, directories and symbolic links only"},
		{[]string{"/fifo-data"}, "/fifo-data/p is a named pipe"},
		{[]string{"/cloister/x"}, "reserved for the converter"},
	} {
		cfg := testConfig(t)
		cfg.EncryptedVolumes = tc.volumes
		if _, err := Convert(t.Context(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("volumes %q: %v; want %q", tc.volumes, err, tc.want)
		}
	}
	for _, tc := range []struct {
		volumes, writable []string
		want              string
	}{
		{[]string{"/"}, nil, `image configuration VOLUME "/": expected a path below the root directory`},
		{[]string{"/afile"}, nil, "image configuration VOLUME /afile: /afile is a regular file in the image; expected a directory or nothing"},
		{nil, []string{"/afile"}, "writable path /afile: /afile is a regular file"},
		{nil, []string{"relative"}, `writable path "relative": expected an absolute path`},
	} {
		cfg := testConfig(t)
		cfg.Writable = tc.writable
		if _, err := Convert(t.Context(), source(t, withVolumes(t, img, tc.volumes...)), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("VOLUME %q, writable %q: %v; want %q", tc.volumes, tc.writable, err, tc.want)
		}
	}
	cfg := testConfig(t, "/afile")
	cfg.EncryptedVolumes, cfg.VolumeKeyName = []string{"/full"}, DefaultKeyName
	if _, err := Convert(t.Context(), source(t, img), cfg); err == nil || !strings.Contains(err.Error(), "expected two secrets") {
		t.Errorf("one name for both keys: %v", err)
	}
}

// TestAddedLayerDirectories: the added layer repeats every directory above
// the protected paths with the image's mode, owner, names and time, so an
// overlay file system does not turn them into root's 0755; the rewritten
// lower layer keeps its directory entries.
func TestAddedLayerDirectories(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{
		file("bin/app", "app"),
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/app/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1001, uname: "app", gname: "appg", mtime: 1234567890},
		{name: "etc/app/conf.d/", typ: tar.TypeDir, mode: 0o2750, uid: 1000, gid: 1001, uname: "app", gname: "appg"},
		{name: "etc/app/conf.d/secret", body: "SECRET-0123456789abcdef", mode: 0o600, uid: 1000, gid: 1001},
		file("etc/app/other", "other"),
		file("srv/nodir/key", "KEY-NO-DIR-ENTRY-0123"),
	})
	res := convert(t, img, testConfig(t, "/etc/app/conf.d/secret", "/srv/nodir/key"))
	hs := addedEntries(t, res.Image)
	var outside []string
	for _, h := range hs {
		if !strings.HasPrefix(h.Name, "cloister/") {
			outside = append(outside, h.Name)
		}
	}
	want := []string{"etc/", "etc/app/", "etc/app/conf.d/", "etc/app/conf.d/secret", "srv/", "srv/nodir/", "srv/nodir/key"}
	if !slices.Equal(outside, want) {
		t.Errorf("added layer outside /cloister: %q; want %q (parents first)", outside, want)
	}
	for name, w := range map[string]tar.Header{
		"etc/":            {Mode: 0o755, ModTime: time.Unix(1600000000, 0)},
		"etc/app/":        {Mode: 0o700, Uid: 1000, Gid: 1001, Uname: "app", Gname: "appg", ModTime: time.Unix(1234567890, 0)},
		"etc/app/conf.d/": {Mode: 0o2750, Uid: 1000, Gid: 1001, Uname: "app", Gname: "appg", ModTime: time.Unix(1600000000, 0)},
		"srv/nodir/":      {Mode: 0o755, ModTime: time.Unix(1650000000, 0)}, // no entry: root's 0755 at the image's time
	} {
		h := headerNamed(hs, name)
		if h == nil || h.Typeflag != tar.TypeDir || h.Mode != w.Mode || h.Uid != w.Uid || h.Gid != w.Gid ||
			h.Uname != w.Uname || h.Gname != w.Gname || !h.ModTime.Equal(w.ModTime) {
			t.Errorf("added layer: %s = %+v; want mode %o owner %d:%d %s:%s time %v", name, h, w.Mode, w.Uid, w.Gid, w.Uname, w.Gname, w.ModTime)
		}
	}
	// The rewritten first layer keeps its directories.
	ls, _ := res.Image.Layers()
	rc, _ := ls[0].Uncompressed()
	defer rc.Close()
	dirs := map[string]int64{}
	tr := tar.NewReader(rc)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if h.Typeflag == tar.TypeDir {
			dirs[h.Name] = h.Mode
		}
		if h.Name == "etc/app/conf.d/secret" {
			t.Error("the rewritten layer holds the protected file")
		}
		io.Copy(io.Discard, tr)
	}
	if dirs["etc/app/"] != 0o700 || dirs["etc/app/conf.d/"] != 0o2750 {
		t.Errorf("rewritten layer directories %v; want etc/app/ 0700 and etc/app/conf.d/ 2750", dirs)
	}
	if err := verifyImage(t, res.Image); err != nil {
		t.Error(err)
	}
}

// TestWritableWarnings: measured files under a directory owned by the
// image's non-root user, or under a well-known data directory, are warned
// about once per top-most such directory; unmeasured ones are not.
func TestWritableWarnings(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:105:PostgreSQL:/var/lib/postgresql:/bin/bash\n"
	base := []te{
		file("bin/app", "app"), file("etc/passwd", passwd),
		{name: "srv/pgdata/", typ: tar.TypeDir, mode: 0o700, uid: 104},
		{name: "srv/pgdata/sub/", typ: tar.TypeDir, mode: 0o700, uid: 104},
		file("srv/pgdata/a", "a"), file("srv/pgdata/sub/b", "b"),
		file("var/log/app.log", "log"), file("tmp/x", "x"), file("var/cache/c", "c"),
		file("etc/conf", "conf"),
	}
	for _, tc := range []struct {
		name, user string
		writable   []string
		want       []string
	}{
		{"by name", "postgres", nil, []string{
			"2 measured files under /srv/pgdata (owned by postgres)",
			"1 measured file under /tmp (a directory applications commonly write)",
			"1 measured file under /var/cache (a directory",
			"1 measured file under /var/log (a directory"}},
		{"numeric", "104:105", []string{"/var/log", "/tmp", "/var/cache"}, []string{"2 measured files under /srv/pgdata (owned by postgres)"}},
		{"root", "root", []string{"/var/log", "/tmp", "/var/cache"}, nil},
		{"unknown name", "nobody", []string{"/var/log", "/tmp", "/var/cache"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := withConfig(t, testImage(t, []string{"/bin/app"}, base), func(cf *v1.ConfigFile) { cf.Config.User = tc.user })
			cfg := testConfig(t)
			cfg.Writable = tc.writable
			got := convert(t, img, cfg).Report.Warnings
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q; want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) || !strings.HasSuffix(got[i], "if the app writes there, a new container on the same volume will be refused; use --writable or --encrypted-volume") {
					t.Errorf("warning %d = %q; want %q…", i, got[i], w)
				}
			}
		})
	}
}

// TestMemoryReport: the report gives the memory the protected files need,
// and a warning above 48 MiB.
func TestMemoryReport(t *testing.T) {
	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("etc/app/a", strings.Repeat("A", 5000)), file("etc/app/b", "B-0123456789")})
	res := convert(t, img, testConfig(t, "/etc/app"))
	m := signedManifest(t, res.Image).Manifest
	if res.Report.MemoryBytes != m.PlaintextBytes() || res.Report.MemoryBytes != 8192+4096+2*4096 {
		t.Errorf("memory_bytes %d; want %d", res.Report.MemoryBytes, m.PlaintextBytes())
	}
	if memoryWarning(48<<20) != "" {
		t.Error("a warning at 48 MiB")
	}
	w := memoryWarning(48<<20 + 1)
	if !strings.Contains(w, "protected files need 48.0 MiB of memory-backed storage (/dev/shm); podman's default is 64 MiB: run with --shm-size=114m") {
		t.Errorf("memoryWarning = %q", w)
	}
}

// FuzzImageUser looks a USER up in an arbitrary /etc/passwd: no panic, and
// root or an unparsable ID is never taken for the application's user.
func FuzzImageUser(f *testing.F) {
	f.Add("root:x:0:0::/root:/bin/sh\npostgres:x:104:105::/var/lib/postgresql:/bin/sh\n", "postgres")
	f.Add("a:x:1000\n::0:\nb:x:-1:0\n", "1000:1000")
	f.Add("toor:x:0:0\n", "toor")
	f.Add("x:x:99999999999:0\n", "x")
	f.Fuzz(func(t *testing.T, passwd, user string) {
		if len(passwd) > maxPasswd {
			return
		}
		etc := newDir(noRef)
		etc.children["passwd"] = &node{kind: kindFile, def: ref{0, 0}, inode: ref{0, 0}}
		v := &view{root: newDir(noRef), idx: []*layerIndex{{entries: []entry{{path: passwdPath, kind: kindFile}}, passwd: []byte(passwd), passwdAt: 0}}}
		v.root.children["etc"] = etc
		uid, name, ok := imageUser(v, user)
		if ok && (uid <= 0 || name == "") {
			t.Errorf("imageUser(%q) = %d, %q, true; want a named non-root user", user, uid, name)
		}
	})
}
