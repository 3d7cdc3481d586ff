package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// roundTrip converts src, writes the result to dst, opens it again and
// verifies it; it returns the written digest.
func roundTrip(t *testing.T, src, dst string) (v1.Hash, *Report) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, src)
	if err != nil {
		t.Fatalf("Open %s: %v", src, err)
	}
	defer s.Close()
	res, err := Convert(ctx, s, testConfig(t, "/etc/secret"))
	if err != nil {
		t.Fatalf("Convert %s: %v", src, err)
	}
	defer res.Close()
	d, err := Write(ctx, dst, res.Image)
	if err != nil {
		t.Fatalf("Write %s: %v", dst, err)
	}
	out, err := Open(ctx, dst)
	if err != nil {
		t.Fatalf("Open %s: %v", dst, err)
	}
	defer out.Close()
	r, err := Verify(ctx, out)
	if err != nil {
		t.Fatalf("Verify %s: %v", dst, err)
	}
	if r.MREnclaveSimulation != res.Report.MREnclaveSimulation || len(r.ProtectedFiles) != 1 {
		t.Errorf("%s: inspected %+v; converted %+v", dst, r, res.Report)
	}
	return d, r
}

func transportImage(t testing.TB) v1.Image {
	return testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app"), file("etc/secret", "TRANSPORT-SECRET")},
		[]te{file("opt/data", "data")})
}

func TestTransports(t *testing.T) {
	dir := t.TempDir()
	img := transportImage(t)
	if err := writeTestLayout(dir+"/in", "src", img); err != nil {
		t.Fatal(err)
	}
	t.Run("oci", func(t *testing.T) {
		d, r := roundTrip(t, "oci:"+dir+"/in:src", "oci:"+dir+"/out:conf")
		if r.Digest != d.String() {
			t.Errorf("inspected digest %s; wrote %s", r.Digest, d)
		}
		// The layout holds both images; a name picks one, no name is ambiguous.
		if _, err := Open(context.Background(), "oci:"+dir+"/in:nope"); err == nil || !strings.Contains(err.Error(), "images named in the layout: src") {
			t.Errorf("Open of a missing tag: %v", err)
		}
	})
	t.Run("docker-archive", func(t *testing.T) {
		tag, _ := name.NewTag("localhost/app:src")
		if err := tarball.WriteToFile(dir+"/src.tar", tag, img); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, "docker-archive:"+dir+"/src.tar:localhost/app:src", "docker-archive:"+dir+"/out.tar:localhost/app:conf")
		roundTrip(t, "docker-archive:"+dir+"/src.tar", "docker-archive:"+dir+"/untagged.tar")
		if _, err := Open(context.Background(), "docker-archive:"+dir+"/src.tar:localhost/other:1"); err == nil || !strings.Contains(err.Error(), "localhost/app:src") {
			t.Errorf("Open of a missing reference: %v", err)
		}
	})
	t.Run("registry", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "http://")
		ref, _ := name.ParseReference(host + "/team/app:src")
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := roundTrip(t, "docker://"+host+"/team/app:src", "docker://"+host+"/team/app:conf")
		got, err := remote.Head(mustRef(t, host+"/team/app:conf"))
		if err != nil || got.Digest != d {
			t.Errorf("registry has %v, %v; wrote %s", got, err, d)
		}
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUncompressedArchive reads a `docker save` style archive whose layers
// are plain tars (one linked from another directory) and keeps them
// uncompressed, digest equal to diff ID, with nothing recompressed.
func TestUncompressedArchive(t *testing.T) {
	l1 := tarBytes(t, file("bin/app", "app"), file("etc/secret", "UNCOMPRESSED-SECRET"))
	l2 := tarBytes(t, file("opt/data", "data"))
	diff := func(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{"Entrypoint": []string{"/bin/app"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diff(l1), diff(l2), diff(l2)}},
	})
	man, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"localhost/plain:1"},
		"Layers": []string{"a/layer.tar", "b/layer.tar", "c/layer.tar"}}})
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []struct {
		name, link string
		data       []byte
	}{{"manifest.json", "", man}, {"config.json", "", cfg}, {"a/layer.tar", "", l1}, {"b/layer.tar", "", l2}, {"c/layer.tar", "../b/layer.tar", nil}} {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if f.link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		}
		tw.WriteHeader(h)
		tw.Write(f.data)
	}
	tw.Close()
	dir := t.TempDir()
	os.WriteFile(dir+"/plain.tar", b.Bytes(), 0o644)

	roundTrip(t, "docker-archive:"+dir+"/plain.tar", "docker-archive:"+dir+"/out.tar:localhost/plain:conf")
	s, err := Open(context.Background(), "docker-archive:"+dir+"/out.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l := s.layers[1]; l.desc.MediaType != types.DockerUncompressedLayer || l.desc.Digest.String() != diff(l2) {
		t.Errorf("copied layer: %+v; want an uncompressed blob with digest %s", l.desc, diff(l2))
	}
}

// TestVerifyFindsChanges changes a converted image after conversion.
func TestVerifyFindsChanges(t *testing.T) {
	res := convert(t, transportImage(t), testConfig(t, "/etc/secret"))
	for _, tc := range []struct {
		name  string
		layer []te
		want  string
	}{
		{"changed file", []te{file("bin/app", "evil")}, "/bin/app: expected size 3, found size 4"},
		{"same size", []te{file("bin/app", "bad")}, "/bin/app: expected sha256"},
		{"deleted file", []te{file("opt/.wh.data", "")}, "/opt/data: expected a regular file, found missing"},
		{"replaced by a link", []te{symlink("opt/data", "/bin/app")}, "/opt/data: expected size 4"},
		{"new file", []te{file("usr/lib/libevil.so", "x")}, "/usr/lib/libevil.so: expected no file"},
		{"protected file swapped", []te{file("etc/secret", "plain")}, "/etc/secret: expected a symbolic link to /dev/shm/cloister-protected/etc/secret, found a regular file"},
		{"protected copy swapped", []te{file("cloister/protected/etc/secret", "plain")}, "/cloister/protected/etc/secret: expected size"},
		{"device", []te{rawEntry("usr/sda", tar.TypeBlock)}, "/usr/sda: expected no device node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := mutate.AppendLayers(res.Image, gzLayer(t, tarBytes(t, tc.layer...)))
			if err != nil {
				t.Fatal(err)
			}
			err = verifyImage(t, img)
			if _, ok := errors.AsType[*MismatchError](err); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify: %v; want a mismatch %q", err, tc.want)
			}
		})
	}
	// Excluded paths may change freely.
	img, _ := mutate.AppendLayers(res.Image, gzLayer(t, tarBytes(t, file("etc/hosts", "127.0.0.1 evil"))))
	if err := verifyImage(t, img); err != nil {
		t.Errorf("Verify with a changed excluded file: %v", err)
	}
}

func TestInspect(t *testing.T) {
	img := transportImage(t)
	if _, _, err := Inspect(context.Background(), source(t, img)); !errors.Is(err, ErrNotConverted) {
		t.Errorf("Inspect of an unconverted image: %v", err)
	}
	res := convert(t, img, testConfig(t))
	r, s, err := Inspect(context.Background(), source(t, res.Image))
	if err != nil || r.MREnclaveSimulation != res.Report.MREnclaveSimulation || s.Manifest.Argv[0] != "/bin/app" {
		t.Fatalf("Inspect: %+v, %v", r, err)
	}
	// A later layer that deletes the manifest makes the image unconverted again.
	gone, _ := mutate.AppendLayers(res.Image, gzLayer(t, tarBytes(t, file("cloister/.wh.enclave.json", ""))))
	if _, _, err := Inspect(context.Background(), source(t, gone)); !errors.Is(err, ErrNotConverted) {
		t.Errorf("Inspect with the manifest deleted: %v", err)
	}
	// A later layer that replaces it with another signer's is read, and its signature checked.
	forged, _ := mutate.AppendLayers(res.Image, gzLayer(t, tarBytes(t, file("cloister/enclave.json", `{"manifest":{}}`))))
	if _, _, err := Inspect(context.Background(), source(t, forged)); err == nil || !strings.Contains(err.Error(), "enclave.json") {
		t.Errorf("Inspect with a replaced manifest: %v", err)
	}
	// A later layer that replaces the launcher: it is not the recorded one, and would not start.
	swapped, _ := mutate.AppendLayers(res.Image, gzLayer(t, tarBytes(t, file("cloister/launch", "another launcher"))))
	if _, _, err := Inspect(context.Background(), source(t, swapped)); !errors.Is(err, ErrMismatch) ||
		!strings.Contains(err.Error(), "/cloister/launch is not the launcher the enclave manifest records") || !strings.Contains(err.Error(), "found 16 bytes") {
		t.Errorf("Inspect with a replaced launcher: %v", err)
	}
}

func writeTestLayout(dir, tag string, img v1.Image) error {
	_, err := Write(context.Background(), "oci:"+dir+":"+tag, img)
	return err
}

// TestLinkedBlobs checks that writing to a layout on the same file system
// links blobs that are already files.
func TestLinkedBlobs(t *testing.T) {
	dir := t.TempDir()
	if err := writeTestLayout(filepath.Join(dir, "in"), "src", transportImage(t)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), "oci:"+filepath.Join(dir, "in")+":src")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "/etc/secret")
	cfg.TempDir = dir
	res, err := Convert(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if _, err := Write(context.Background(), "oci:"+filepath.Join(dir, "out")+":x", res.Image); err != nil {
		t.Fatal(err)
	}
	ls, _ := res.Image.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		fi, err := os.Stat(filepath.Join(dir, "out", "blobs", d.Algorithm, d.Hex))
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink < 2 {
			t.Errorf("blob %s was copied, not linked", d)
		}
	}
}

// TestWriteInPlace refuses to write a converted image into the OCI layout
// or the docker-archive file it was read from, however the path is
// spelled, and leaves the source as it was.
func TestWriteInPlace(t *testing.T) {
	dir := t.TempDir()
	img := transportImage(t)
	if err := writeTestLayout(dir+"/in", "src", img); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir+"/in", dir+"/alias"); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("localhost/app:src")
	if err := tarball.WriteToFile(dir+"/src.tar", tag, img); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, dst, msg, watch string }{
		{"oci:" + dir + "/in:src", "oci:" + dir + "/in:src", "is the OCI layout of the source", dir + "/in/index.json"},
		{"oci:" + dir + "/in:src", "oci:" + dir + "/alias/.:confidential", "is the OCI layout of the source", dir + "/in/index.json"},
		{"docker-archive:" + dir + "/src.tar", "docker-archive:" + dir + "/src.tar:localhost/app:conf", "is the archive of the source", dir + "/src.tar"},
	} {
		s, err := Open(context.Background(), tc.src)
		if err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(tc.watch)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Convert(context.Background(), s, testConfig(t, "/etc/secret"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Write(context.Background(), tc.dst, res.Image); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Write %s from %s: %v; want %q", tc.dst, tc.src, err, tc.msg)
		}
		if err := CheckDestination(tc.src, tc.dst); err == nil {
			t.Errorf("CheckDestination(%s, %s) = nil; want an error", tc.src, tc.dst)
		}
		if after, err := os.ReadFile(tc.watch); err != nil || !bytes.Equal(before, after) {
			t.Errorf("%s changed (%v)", tc.watch, err)
		}
		res.Close()
		s.Close()
	}
	// Other places are fine, including one that does not exist yet.
	for _, dst := range []string{"oci:" + dir + "/out:x", "docker-archive:" + dir + "/in/other.tar", "docker://127.0.0.1:1/app:1"} {
		if err := CheckDestination("oci:"+dir+"/in:src", dst); err != nil {
			t.Errorf("CheckDestination(oci:%s/in:src, %s): %v", dir, dst, err)
		}
	}
}
