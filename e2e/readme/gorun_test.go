package readme

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/internal/e2etest"
)

// TestGoRunConvert checks what the README says of `go run ./cmd/cloister image convert`: it
// says exactly how to get the launcher when there is none, and works once cloister-launch is
// in PATH.
func TestGoRunConvert(t *testing.T) {
	e2etest.SkipShort(t)
	root := moduleRoot(t)
	bins := e2etest.Bins(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "signer.pem")
	if out, err := exec.Command(bins.Cloister, "image", "keygen", key).CombinedOutput(); err != nil {
		t.Fatalf("image keygen: %v\n%s", err, out)
	}
	// PATH has the go tool and the system's programs, and no cloister-launch.
	noLauncher := filepath.Dir(goBin) + ":/usr/bin:/bin"
	convert := func(path, dst string) (string, error) {
		cmd := exec.CommandContext(t.Context(), "go", "run", "./cmd/cloister", "image", "convert",
			"oci:examples/image:1", "oci:"+filepath.Join(dir, dst)+":1", "--sign-key", key)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PATH="+path)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := convert(noLauncher, "none")
	if err == nil || !strings.Contains(out, "no cloister-launch binary next to cloister or in PATH; build it with `CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o cloister-launch ./cmd/cloister-launch` and pass --launcher FILE") {
		t.Errorf("go run … image convert without a launcher: %v\n%s\nwant the way to build one", err, out)
	}
	if out, err := convert(filepath.Dir(bins.Launcher)+":"+noLauncher, "converted"); err != nil || !strings.Contains(out, "Converted oci:examples/image:1") {
		t.Errorf("go run … image convert with cloister-launch in PATH: %v\n%s", err, out)
	}
}
