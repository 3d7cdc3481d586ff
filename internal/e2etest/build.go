package e2etest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries are the programs under test, built from the module's source. The files are shared
// with other test processes and must not be changed.
type Binaries struct {
	// Cloister is cmd/cloister: the Coordinator, the operator CLI and `cloister launch`.
	Cloister string
	// Launcher is cmd/cloister-launch, built with CGO_ENABLED=0 so that it runs in any image,
	// and stripped (launcherFlags).
	Launcher string
	// Coordinator is cmd/cloister-coordinator, the binary of the Coordinator image, built
	// static and stripped as image.BuildCoordinatorHint says.
	Coordinator string
}

// Build returns the binaries, built at most once per test process and shared with the other
// test processes of the same source (see the package documentation). It is safe for
// concurrent use; every call returns the same result.
func Build() (*Binaries, error) { return build() }

var build = sync.OnceValues(func() (*Binaries, error) {
	b, err := buildShared()
	if err != nil {
		return nil, fmt.Errorf("build the binaries under test: %w", err)
	}
	return b, nil
})

// Bins returns [Build]'s binaries, or fails tb with the build's error. It does not skip with
// -short: unit tests that need a binary use it too.
func Bins(tb testing.TB) *Binaries {
	tb.Helper()
	b, err := Build()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Names of the files in a cache entry.
const (
	cloisterName = "cloister"
	launcherName = "cloister-launch"
	coordName    = "cloister-coordinator"
	// readyName marks an entry whose binaries were built from the source its key names. Its
	// modification time is the entry's last use.
	readyName = "ready"
)

// unusedFor is how long a cache entry may go unused before a build removes it.
const unusedFor = time.Hour

// buildShared finds or makes the cache entry of the current source and returns its binaries.
// It returns holding a shared lock on the entry, until the process exits, so that no other
// process removes it. An entry is made under an exclusive lock, and published by its ready
// marker; nothing else writes an entry.
func buildShared() (*Binaries, error) {
	settings, root, err := goSettings()
	if err != nil {
		return nil, err
	}
	key, err := sourceKey(root, settings)
	if err != nil {
		return nil, err
	}
	base, err := cacheBase()
	if err != nil {
		return nil, err
	}
	if base == "" { // no file locks on this system: build for this process alone
		dir, err := os.MkdirTemp("", "cloister-e2etest-")
		if err != nil {
			return nil, err
		}
		return buildInto(root, dir)
	}
	entry := filepath.Join(base, key)
	ready := filepath.Join(entry, readyName)
	bins := binariesIn(entry)
	use := func(l *fileLock) (*Binaries, error) {
		now := time.Now()
		if err := os.Chtimes(ready, now, now); err != nil {
			l.unlock()
			return nil, err
		}
		l.keepShared()
		return bins, nil
	}

	// Most processes find the entry made: a shared lock waits for its builder, if any.
	l, err := lockFile(entry+".lock", false)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(ready); err == nil {
		return use(l)
	}
	l.unlock()

	l, err = lockFile(entry+".lock", true)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(ready); err == nil { // made while this process waited
		return use(l)
	}
	defer prune(base, key)
	if err := os.RemoveAll(entry); err != nil { // a failed build's leftovers
		l.unlock()
		return nil, err
	}
	if err := os.Mkdir(entry, 0o700); err != nil {
		l.unlock()
		return nil, err
	}
	if _, err := buildInto(root, entry); err != nil {
		l.unlock()
		return nil, err
	}
	// The work tree may have changed while the compiler ran. Then the binaries are a mix of two
	// states of the source: this process uses them, under a name no key leads to.
	if after, err := sourceKey(root, settings); err != nil || after != key {
		defer l.unlock()
		mixed := filepath.Join(base, fmt.Sprintf("%s%d-%d", mixedPrefix, os.Getpid(), time.Now().UnixNano()))
		if err := os.Rename(entry, mixed); err != nil {
			return nil, err
		}
		return binariesIn(mixed), nil
	}
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		l.unlock()
		return nil, err
	}
	return use(l)
}

// mixedPrefix starts the names of directories that hold binaries of a source that changed
// while they were built. prune removes them once they are unusedFor old.
const mixedPrefix = "mixed-"

// binariesIn names the binaries in the directory dir.
func binariesIn(dir string) *Binaries {
	return &Binaries{Cloister: filepath.Join(dir, cloisterName), Launcher: filepath.Join(dir, launcherName),
		Coordinator: filepath.Join(dir, coordName)}
}

// buildInto builds the binaries into dir, at the same time.
func buildInto(root, dir string) (*Binaries, error) {
	b := binariesIn(dir)
	var errCloister, errLauncher, errCoord error
	var wg sync.WaitGroup
	wg.Go(func() { errCloister = goBuild(root, b.Cloister, "./cmd/cloister", nil) })
	wg.Go(func() {
		errLauncher = goBuild(root, b.Launcher, "./cmd/cloister-launch", launcherFlags, "CGO_ENABLED=0")
	})
	wg.Go(func() {
		errCoord = goBuild(root, b.Coordinator, "./cmd/cloister-coordinator", launcherFlags, "CGO_ENABLED=0")
	})
	wg.Wait()
	if err := errors.Join(errCloister, errLauncher, errCoord); err != nil {
		return nil, err
	}
	return b, nil
}

// launcherFlags build the launcher as the README and images do: stripped, a third smaller, and
// without local paths.
var launcherFlags = []string{"-trimpath", "-ldflags=-s -w"}

func goBuild(root, out, pkg string, flags []string, env ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// goSettings returns the go command's settings that change what it builds, as JSON, and the
// module's root directory.
func goSettings() ([]byte, string, error) {
	cmd := exec.Command("go", "env", "-json", "GOMOD", "GOWORK", "GOVERSION", "GOOS", "GOARCH", "GOAMD64", "GOARM64",
		"GOFLAGS", "GOEXPERIMENT", "GOTOOLCHAIN", "CGO_ENABLED", "CC", "CGO_CFLAGS", "CGO_LDFLAGS")
	out, err := cmd.Output()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return nil, "", fmt.Errorf("go env: %w\n%s", err, ee.Stderr)
	}
	if err != nil {
		return nil, "", fmt.Errorf("go env: %w", err)
	}
	var env struct{ GOMOD string }
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, "", fmt.Errorf("go env: %w", err)
	}
	if env.GOMOD == "" || env.GOMOD == os.DevNull {
		return nil, "", errors.New("go env GOMOD: the tests do not run inside the module")
	}
	return out, filepath.Dir(env.GOMOD), nil
}

// sourceKey hashes settings and every file below root that a build of the binaries may read:
// all but test files, testdata and directories whose names start with "." or "_" (which the go
// command ignores, .git among them).
func sourceKey(root string, settings []byte) (string, error) {
	h := sha256.New()
	h.Write(settings)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		var content []byte
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			content = []byte("symlink " + target)
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			defer f.Close()
			fh := sha256.New()
			if _, err := io.Copy(fh, f); err != nil {
				return err
			}
			content = fh.Sum(nil)
		default:
			return nil
		}
		fmt.Fprintf(h, "%q %x\n", filepath.ToSlash(rel), content)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash the source below %s: %w", root, err)
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// prune removes the cache entries below base that no process uses and that went unused for
// unusedFor, except keep's. It is best effort: an entry it cannot lock or remove stays.
func prune(base, keep string) {
	locks, err := filepath.Glob(filepath.Join(base, "*.lock"))
	if err != nil {
		return
	}
	for _, lf := range locks {
		entry := strings.TrimSuffix(lf, ".lock")
		if filepath.Base(entry) == keep {
			continue
		}
		l, ok := tryLockExclusive(lf)
		if !ok {
			continue // in use, or gone
		}
		// The last use: the ready marker, or the directory of an entry never published.
		fi, err := os.Stat(filepath.Join(entry, readyName))
		if err != nil {
			fi, err = os.Stat(entry)
		}
		if err != nil || time.Since(fi.ModTime()) > unusedFor {
			if os.RemoveAll(entry) == nil {
				os.Remove(lf) // while locked: see lockFile
			}
		}
		l.unlock()
	}
	mixed, _ := filepath.Glob(filepath.Join(base, mixedPrefix+"*"))
	for _, dir := range mixed {
		if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > unusedFor {
			os.RemoveAll(dir)
		}
	}
}
