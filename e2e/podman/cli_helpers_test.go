package podman

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/internal/e2etest"
)

// cloister runs the CLI and returns its standard output and error.
func cloister(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return run(t, e2etest.Bins(t).Cloister, args...)
}

// run runs a program for at most 3 minutes and returns its standard output
// and error.
func run(t *testing.T, prog string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustCloister runs the CLI and fails the test on an error.
func mustCloister(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := cloister(t, args...)
	if err != nil {
		t.Fatalf("cloister %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// convertOutput is `image convert --output json`.
type convertOutput = jsonoutput.ImageConvert

// convert runs `cloister image convert SRC DST --output json` with the
// built launcher.
func convert(t *testing.T, src, dst string, args ...string) *convertOutput {
	t.Helper()
	out := mustCloister(t, append([]string{"image", "convert", src, dst, "--launcher", e2etest.Bins(t).Launcher, "--output", "json"}, args...)...)
	var r convertOutput
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("convert output: %v\n%s", err, out)
	}
	return &r
}

// keygen makes a signing key with the CLI and returns its MRSIGNER.
func keygen(t *testing.T, file string) [32]byte {
	t.Helper()
	var r jsonoutput.ImageKeygen
	if err := json.Unmarshal([]byte(mustCloister(t, "image", "keygen", file, "--output", "json")), &r); err != nil {
		t.Fatal(err)
	}
	var m [32]byte
	if b, err := hex.DecodeString(r.MRSigner); err != nil || len(b) != 32 {
		t.Fatalf("keygen printed MRSIGNER %q", r.MRSigner)
	} else {
		copy(m[:], b)
	}
	return m
}

// finding is a secret found in an image.
type finding struct{ secret, where string }

// scanBlobs looks for each secret in every file under dir or in the tar
// file archive: in the stored bytes (compressed blobs, configurations,
// manifests) and, for gzip blobs and the tar layers inside an archive, in
// their decompressed content.
func scanBlobs(t *testing.T, root string, secrets map[string][]byte) []finding {
	t.Helper()
	var found []finding
	look := func(where string, b []byte) {
		for name, s := range secrets {
			if bytes.Contains(b, s) {
				found = append(found, finding{name, where})
			}
		}
	}
	scan := func(where string, b []byte) {
		look(where, b)
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			look(where+" (decompressed)", plain)
		}
	}
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				scan(p, b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	f, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return found
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		scan(fmt.Sprintf("%s:%s", filepath.Base(root), h.Name), b)
	}
}

// freePort returns a TCP port free on loopback right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// listening reports whether addr accepts TCP connections.
func listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
