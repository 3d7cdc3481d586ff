package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/seal"
)

// Environment of the crash child (see TestMain).
const (
	envChildDir   = "CLOISTER_STORE_CRASH_DIR"
	envChildKey   = "CLOISTER_STORE_CRASH_SEAL_KEY"
	envChildRound = "CLOISTER_STORE_CRASH_ROUND"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChildDir); dir != "" {
		if err := crashChild(dir, os.Getenv(envChildKey), os.Getenv(envChildRound)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashValue is the deterministic value of write i of round r: 50 to about
// 3000 bytes, so that commits split and allocate pages.
func crashValue(round, i int) []byte {
	seed := sha256.Sum256(fmt.Appendf(nil, "%d/%d", round, i))
	return bytes.Repeat(seed[:], 2+(i*7)%90)
}

func crashKey(round, i int) string { return fmt.Sprintf("r%d-%08d", round, i) }

// crashChild writes until it is killed. Each transaction increments the
// counter and writes one value, so the counter must always equal the
// number of values. After a write commits, it prints "ack <i>".
func crashChild(dir, keyPath, roundStr string) error {
	round, err := strconv.Atoi(roundStr)
	if err != nil {
		return err
	}
	s, err := seal.NewSimulated(keyPath)
	if err != nil {
		return err
	}
	db, err := Open(dir, s, Options{})
	if err != nil {
		return err
	}
	var out sync.Mutex
	ack := func(line string) {
		out.Lock()
		defer out.Unlock()
		os.Stdout.WriteString(line + "\n") // one write per line: no tearing
	}
	ack("ready")
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			run := db.Batch
			if w == 0 {
				run = db.Update
			}
			for {
				i := int(next.Add(1))
				err := run(context.Background(), func(tx *Tx) error {
					if _, err := tx.Next("counters", "total"); err != nil {
						return err
					}
					return tx.Put("data", crashKey(round, i), crashValue(round, i))
				})
				if err != nil {
					errc <- err
					return
				}
				ack("ack " + strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	return <-errc
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	dir := filepath.Join(t.TempDir(), "store")
	keyPath := filepath.Join(t.TempDir(), "seal.key")
	s, err := seal.NewSimulated(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string][]byte{}
	for round := range 3 {
		for _, i := range runCrashChild(t, dir, keyPath, round, 50+rand.IntN(250)) {
			acked[crashKey(round, i)] = crashValue(round, i)
		}
		db, err := Open(dir, s, Options{})
		if err != nil {
			t.Fatalf("round %d: reopening after the kill: %v", round, err)
		}
		checkConsistent(t, db)
		var total uint64
		stored := 0
		err = db.View(t.Context(), func(tx *Tx) error {
			for k, want := range acked {
				got, err := tx.Get("data", k)
				if err != nil {
					return fmt.Errorf("acknowledged write %s: %w", k, err)
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("acknowledged write %s has %d bytes that differ from the %d written", k, len(got), len(want))
				}
			}
			v, err := tx.Get("counters", "total")
			if err != nil {
				return err
			}
			total = binary.BigEndian.Uint64(v)
			return tx.ForEach("data", func(k string, v []byte) error {
				stored++
				var r, i int
				if _, err := fmt.Sscanf(k, "r%d-%d", &r, &i); err != nil || !bytes.Equal(v, crashValue(r, i)) {
					return fmt.Errorf("unexpected content under %s", k)
				}
				return nil
			})
		})
		db.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if total != uint64(stored) || stored < len(acked) {
			t.Fatalf("round %d: counter %d, %d values stored, %d acknowledged; want counter = stored ≥ acknowledged", round, total, stored, len(acked))
		}
		t.Logf("round %d: %d acknowledged in all, %d stored", round, len(acked), stored)
	}
}

// runCrashChild starts a writer child on dir, checks that the directory is
// locked while it runs, SIGKILLs it after killAfter acknowledgements, and
// returns every write it acknowledged (including those still in the pipe).
func runCrashChild(t *testing.T, dir, keyPath string, round, killAfter int) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildDir+"="+dir, envChildKey+"="+keyPath, envChildRound+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		cmd.Wait()
		t.Fatalf("child did not start: %q; stderr:\n%s", lines.Text(), stderr.String())
	}

	// While the child holds the store, another opener must get ErrLocked.
	s, err := seal.NewSimulated(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if db, err := Open(dir, s, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open while the child runs: %v, want ErrLocked", err)
	}

	var acked []int
	killed := false
	for lines.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), "ack "))
		if err != nil {
			t.Fatalf("child wrote %q", lines.Text())
		}
		acked = append(acked, n)
		if !killed && len(acked) >= killAfter {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exited with %v after %d acknowledgements (killed %v); stderr:\n%s", err, len(acked), killed, stderr.String())
	}
	return acked
}
