package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildLauncher builds cloister-launch static with the extra go build flags.
func buildLauncher(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "launcher")
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, "github.com/cloister-dev/cloister/cmd/cloister-launch")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestUnstrippedLauncherWarning: a launcher with its symbol table and debug information (a
// plain go build) converts, with a warning naming what stripping saves and how to build it;
// a stripped one, as BuildLauncherHint builds it, gets none.
func TestUnstrippedLauncherWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs")
	}
	unstripped, stripped := buildLauncher(t), buildLauncher(t, "-trimpath", "-ldflags=-s -w")
	li, err := checkLauncher(unstripped)
	if err != nil {
		t.Fatal(err)
	}
	if li.unstripped <= 0 || li.unstripped >= li.size {
		t.Errorf("unstripped launcher: %d of %d bytes strippable; want some, not all", li.unstripped, li.size)
	}
	if li, err := checkLauncher(stripped); err != nil || li.unstripped != 0 {
		t.Errorf("stripped launcher: %+v, %v; want nothing strippable", li, err)
	}

	img := testImage(t, []string{"/bin/app"}, []te{file("bin/app", "app")})
	for _, tc := range []struct {
		name, launcher string
		warn           bool
	}{{"unstripped", unstripped, true}, {"stripped", stripped, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Launcher = tc.launcher
			got := convert(t, img, cfg).Report.Warnings
			warned := slices.ContainsFunc(got, func(w string) bool {
				return strings.HasPrefix(w, "the launcher "+tc.launcher+" is not stripped: ") && strings.HasSuffix(w, "build it with "+BuildLauncherHint)
			})
			if warned != tc.warn {
				t.Errorf("warnings %q; want a warning about an unstripped launcher: %v", got, tc.warn)
			}
			t.Logf("warnings: %q", got)
		})
	}
}
