package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawTar builds a tar from raw USTAR headers, for entries tar.Writer
// refuses to write. Each entry is a header plus size bytes of data.
type rawTar struct{ b bytes.Buffer }

func (r *rawTar) add(name string, typ byte, size int64, link string, data []byte) *rawTar {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "14000000000\x00")
	h[156] = typ
	copy(h[157:257], link)
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	r.b.Write(h)
	r.b.Write(data)
	if pad := len(data) % 512; pad != 0 {
		r.b.Write(make([]byte, 512-pad))
	}
	return r
}

// sparse adds a PAX (GNU 1.0) sparse file of realsize bytes, all hole: its
// entry in the tar stream is a few hundred bytes whatever realsize is.
func (r *rawTar) sparse(name string, realsize int64) *rawTar {
	var pax []byte
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name},
		{"GNU.sparse.realsize", fmt.Sprint(realsize)}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		pax = fmt.Appendf(pax, "%d%s", n, rec)
	}
	r.add("PaxHeaders/"+name, 'x', int64(len(pax)), "", pax)
	sparseMap := make([]byte, 512)
	copy(sparseMap, "0\n") // no data fragments
	return r.add("GNUSparseFile.0/"+name, '0', 512, "", sparseMap)
}

func (r *rawTar) bytes() []byte {
	return append(bytes.Clone(r.b.Bytes()), make([]byte, 1024)...)
}

// imageOfTars builds an image whose layers are the given uncompressed tars,
// gzip-compressed.
func imageOfTars(t *testing.T, tars ...[]byte) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for _, b := range tars {
		var err error
		if img, err = mutate.AppendLayers(img, gzLayer(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = []string{"/bin/app"}
	cf.OS = "linux"
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestHostileLayers feeds layers built to mislead or exhaust the converter
// and requires each to fail closed with a clear error naming the problem.
func TestHostileLayers(t *testing.T) {
	app := []te{file("bin/app", "app")}
	big := strings.Repeat("x", 2048)
	cases := []struct {
		name    string
		layers  [][]byte
		limits  Limits
		protect []string
		want    error
		msg     string
	}{
		{name: "absolute path", layers: [][]byte{tarBytes(t, append(app, file("/etc/passwd", "x"))...)}, want: ErrUnsafe, msg: "absolute name"},
		{name: "dot-dot escape", layers: [][]byte{tarBytes(t, append(app, file("../../etc/passwd", "x"))...)}, want: ErrUnsafe, msg: `".." element`},
		{name: "dot-dot inside", layers: [][]byte{tarBytes(t, append(app, file("a/../../b", "x"))...)}, want: ErrUnsafe, msg: `".." element`},
		{name: "hard link escape", layers: [][]byte{tarBytes(t, append(app, hardlink("x", "../../etc/shadow"))...)}, want: ErrUnsafe, msg: "hard link target"},
		{name: "hard link to missing", layers: [][]byte{tarBytes(t, append(app, hardlink("x", "nope"))...)}, want: ErrUnsafe, msg: "does not exist"},
		{name: "hard link to directory", layers: [][]byte{tarBytes(t, append(app, dir("d/"), hardlink("x", "d"))...)}, want: ErrUnsafe, msg: "is a directory"},
		{name: "entry through symlink", layers: [][]byte{tarBytes(t, append(app, symlink("etc", "/tmp"), file("etc/passwd", "x"))...)}, want: ErrUnsafe, msg: "is a symbolic link"},
		{name: "entry under a file of a lower layer", layers: [][]byte{tarBytes(t, append(app, file("a", "x"))...), tarBytes(t, file("a/b", "y"))}, want: ErrUnsafe, msg: "is a regular file in a lower layer"},
		{name: "device node", layers: [][]byte{tarBytes(t, append(app, rawEntry("dev2/sda", tar.TypeBlock))...)}, want: ErrUnsafe, msg: "device node"},
		{name: "char device", layers: [][]byte{tarBytes(t, append(app, rawEntry("opt/tty", tar.TypeChar))...)}, want: ErrUnsafe, msg: "device node"},
		{name: "not utf-8", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 0, "", nil).add("bad\xff", '0', 0, "", nil).bytes()}, want: ErrUnsafe, msg: "UTF-8"},
		{name: "directory with data", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 0, "", nil).add("d/", '5', 4, "", []byte("data")).bytes()}, want: ErrUnsafe, msg: "expected none"},
		{name: "unknown type", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 0, "", nil).add("x", 'Z', 0, "", nil).bytes()}, want: ErrUnsafe, msg: "unsupported tar entry type"},
		{name: "empty whiteout", layers: [][]byte{tarBytes(t, append(app, file("etc/.wh.", ""))...)}, want: ErrUnsafe, msg: "names no file"},
		{name: "whiteout with data", layers: [][]byte{tarBytes(t, append(app, file("etc/.wh.x", "data"))...)}, want: ErrUnsafe, msg: "whiteout with 4 bytes"},
		{name: "truncated content", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 1<<20, "", []byte("short")).bytes()[:2048]}, want: ErrUnsafe, msg: ""},
		{name: "garbage", layers: [][]byte{bytes.Repeat([]byte("not a tar "), 100)}, want: ErrUnsafe, msg: "reading tar entry"},
		{name: "huge name", layers: [][]byte{tarBytes(t, append(app, file(strings.Repeat("a/", 2100)+"x", "x"))...)}, want: ErrLimit, msg: "expected at most 4096"},
		{name: "too many entries", layers: [][]byte{tarBytes(t, append(app, file("a", ""), file("b", ""), file("c", ""))...)}, limits: Limits{MaxEntries: 3}, want: ErrLimit, msg: "more than 3 entries"},
		{name: "file too large", layers: [][]byte{tarBytes(t, append(app, file("big", big))...)}, limits: Limits{MaxFileSize: 1024}, want: ErrLimit, msg: "file size 2048"},
		{name: "layer too large", layers: [][]byte{tarBytes(t, append(app, file("big", big))...)}, limits: Limits{MaxLayerSize: 3000}, want: ErrLimit, msg: "larger than 3000 bytes"},
		{name: "sparse files past the layer limit", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 0, "", nil).sparse("a", 8<<20).sparse("b", 8<<20).bytes()},
			limits: Limits{MaxLayerSize: 1 << 20}, want: ErrLimit, msg: "the layer's files add up to more than 1048576 bytes"},
		{name: "sparse files past the image limit", layers: [][]byte{(&rawTar{}).add("bin/app", '0', 0, "", nil).sparse("a", 8<<20).bytes(), (&rawTar{}).sparse("b", 8<<20).bytes()},
			limits: Limits{MaxImageSize: 12 << 20}, want: ErrLimit, msg: "the image's files add up to more than 12582912 bytes"},
		{name: "path element too long", layers: [][]byte{tarBytes(t, append(app, file("opt/"+strings.Repeat("n", 256), "x"))...)}, want: ErrLimit, msg: "element of 256 bytes; expected at most 255"},
		{name: "link target element too long", layers: [][]byte{tarBytes(t, append(app, hardlink("x", "bin/"+strings.Repeat("n", 300)))...)}, want: ErrLimit, msg: "element of 300 bytes"},
		{name: "names past their budget", layers: [][]byte{tarBytes(t, append(app, file("opt/"+strings.Repeat("a", 200), ""), symlink("opt/l", strings.Repeat("b/", 400)))...)},
			limits: Limits{MaxNameBytes: 1000}, want: ErrLimit, msg: "paths and link targets add up to more than 1000 bytes"},
		{name: "too many layers", layers: [][]byte{tarBytes(t, app...), tarBytes(t, app...), tarBytes(t, app...)}, limits: Limits{MaxLayers: 2}, want: ErrLimit, msg: "3 layers"},
		{name: "symlink loop protected", layers: [][]byte{tarBytes(t, append(app, symlink("a", "b"), symlink("b", "a"))...)}, protect: []string{"/a"}, msg: "not found in the image"},
		{name: "protect a device", layers: [][]byte{tarBytes(t, append(app, te{name: "run/p", typ: tar.TypeFifo})...)}, protect: []string{"/run/p"}, msg: "is a named pipe"},
		{name: "already converted", layers: [][]byte{tarBytes(t, append(app, file("cloister/launch", "x"))...)}, msg: "already has /cloister"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.protect...)
			cfg.Limits = tc.limits
			_, err := Convert(context.Background(), source(t, imageOfTars(t, tc.layers...)), cfg)
			if err == nil {
				t.Fatal("Convert succeeded; want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Convert error %q does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Convert error %q; want it to say %q", err, tc.msg)
			}
			if tc.want != nil && tc.limits == (Limits{}) {
				if _, ok := errors.AsType[*LayerError](err); !ok {
					t.Errorf("Convert error %q names no layer", err)
				}
			}
		})
	}
}

// TestSafeOddities are unusual but safe entries the converter accepts.
func TestSafeOddities(t *testing.T) {
	img := imageOfTars(t,
		tarBytes(t, dir("./"), file("./bin/app", "app"), symlink("etc/escape", "../../../../etc/shadow"),
			file("var/.wh..wh.plnk/1.2", ""), te{name: "run/fifo", typ: tar.TypeFifo}, file("dev/null", "")),
		tarBytes(t, file("opt/x", "1"), file("opt/x", "2")), // the later duplicate wins
	)
	res := convert(t, img, testConfig(t))
	m := signedManifest(t, res.Image).Manifest
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, " "), "/bin/app /opt/x /var/.wh..wh.plnk/1.2"; got != want {
		t.Errorf("trusted files %q; want %q (no symlink, fifo, excluded /dev, aufs metadata kept as a file)", got, want)
	}
	if m.Files[1].Size != 1 {
		t.Errorf("/opt/x size %d; want the later duplicate's 1", m.Files[1].Size)
	}
}
