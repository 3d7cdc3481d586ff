package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cloister-dev/cloister/seal"
	"go.etcd.io/bbolt"
)

// contents is a store's data: bucket → key → value.
type contents map[string]map[string]string

func (c contents) put(bucket, key, value string) {
	if c[bucket] == nil {
		c[bucket] = map[string]string{}
	}
	c[bucket][key] = value
}

func (c contents) clone() contents {
	out := contents{}
	for b, kv := range c {
		out[b] = maps.Clone(kv)
	}
	return out
}

func (c contents) equal(d contents) bool {
	return maps.EqualFunc(c, d, func(a, b map[string]string) bool { return maps.Equal(a, b) })
}

// corpus is a closed store with realistic content, to damage.
type corpus struct {
	dir      string
	sealer   seal.Sealer
	state    []byte // state.db
	key      []byte // data-key.json
	anchor   []byte // state-version
	pageSize int
	info     *stateInfo
	final    contents // after the last transaction
	previous contents // before it: what a fallback to the older meta page gives
}

// newCorpus builds a store through the API in several transactions: a
// bucket big enough for branch pages, values larger than a page (overflow
// pages), an inline bucket, counters, and deletes and rewrites that leave
// pages in the freelist. Its last transaction writes one marker value.
func newCorpus(t testing.TB) *corpus {
	t.Helper()
	c := &corpus{dir: filepath.Join(t.TempDir(), "store"), sealer: newSealer(t)}
	db, err := Open(c.dir, c.sealer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := contents{}
	update := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := db.Update(t.Context(), fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx *Tx) error {
		for i := range 240 {
			k, v := fmt.Sprintf("key-%04d", i), strings.Repeat(string(rune('a'+i%26)), 40+i%120)
			want.put("data", k, v)
			if err := tx.Put("data", k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	update(func(tx *Tx) error {
		for i := range 3 {
			k, v := fmt.Sprintf("blob-%d", i), strings.Repeat(fmt.Sprint(i), 9000+i*1000)
			want.put("big", k, v)
			if err := tx.Put("big", k, []byte(v)); err != nil {
				return err
			}
		}
		for _, k := range []string{"alpha", "beta", "gamma"} {
			want.put("small", k, "value of "+k)
			if err := tx.Put("small", k, []byte("value of "+k)); err != nil {
				return err
			}
		}
		return nil
	})
	for range 3 {
		update(func(tx *Tx) error { _, err := tx.Next("counters", "activations"); return err })
	}
	want.put("counters", "activations", "\x00\x00\x00\x00\x00\x00\x00\x03")
	update(func(tx *Tx) error {
		for i := 0; i < 240; i += 3 {
			k := fmt.Sprintf("key-%04d", i)
			delete(want["data"], k)
			if err := tx.Delete("data", k); err != nil {
				return err
			}
		}
		for i := 1; i < 240; i += 7 {
			k, v := fmt.Sprintf("key-%04d", i), fmt.Sprintf("rewritten %d", i)
			want.put("data", k, v)
			if err := tx.Put("data", k, []byte(v)); err != nil {
				return err
			}
		}
		delete(want["big"], "blob-1")
		return tx.Delete("big", "blob-1")
	})
	c.previous = want.clone()
	update(func(tx *Tx) error { return tx.Put("marker", "last", []byte("final")) })
	want.put("marker", "last", "final")
	c.final = want
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c.state, err = os.ReadFile(filepath.Join(c.dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.key, err = os.ReadFile(filepath.Join(c.dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if c.anchor, err = os.ReadFile(filepath.Join(c.dir, VersionFile)); err != nil {
		t.Fatal(err)
	}
	c.info, err = verifyState(bytes.NewReader(c.state), int64(len(c.state)), func(string, []byte, []byte) error { return nil })
	if err != nil {
		t.Fatalf("verifyState of an undamaged store: %v", err)
	}
	c.pageSize = c.info.pageSize
	return c
}

// copyTo writes the corpus's files into a new store directory.
func (c *corpus) copyTo(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, StateFile), c.state)
	writeFile(t, filepath.Join(dir, KeyFile), c.key)
	writeFile(t, filepath.Join(dir, VersionFile), c.anchor)
	return dir
}

// readAll reads every bucket of db through the API.
func readAll(db *DB) (contents, error) {
	var names []string
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if string(name) != metaBucket {
				names = append(names, string(name))
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	got := contents{}
	err = db.View(context.Background(), func(tx *Tx) error {
		for _, b := range names {
			err := tx.ForEach(b, func(k string, v []byte) error {
				got.put(b, k, string(v))
				return nil
			})
			if err != nil {
				return err
			}
			if got[b] == nil {
				got[b] = map[string]string{}
			}
		}
		return nil
	})
	return got, err
}

// damage is one way to damage state.db.
type damage struct {
	name     string
	page     int                  // the page damaged, or -1
	mutate   func(page []byte)    // changes a copy of the page
	truncate int64                // if page is -1: the new length
	wantOpen func(c *corpus) bool // whether Open must succeed
}

// damages returns, for every page of the file, each other page type flag
// and some invalid ones, and random bytes in the header and the body; and
// a truncation at every page boundary.
func (c *corpus) damages() []damage {
	var out []damage
	pages := len(c.state) / c.pageSize
	unused := func(p int) func(*corpus) bool {
		// Open must not refuse damage to pages nothing uses.
		return func(c *corpus) bool { return uint64(p) >= c.info.hwm || c.info.pages[p] == pageFree }
	}
	for p := range pages {
		flags := le.Uint16(c.state[p*c.pageSize+8:])
		for _, f := range []uint16{0, branchPageFlag, leafPageFlag, metaPageFlag, freelistPageFlag, 0x03, 0x08, 0x20, 0x8000, 0xffff} {
			if f == flags {
				continue
			}
			out = append(out, damage{
				name:     fmt.Sprintf("page %d flags 0x%02x→0x%02x", p, flags, f),
				page:     p,
				mutate:   func(b []byte) { le.PutUint16(b[8:], f) },
				wantOpen: unused(p),
			})
		}
		rng := rand.New(rand.NewPCG(uint64(p), 7))
		for i := range 12 {
			// Half in the 16-byte header, half anywhere: 1 to 8 random bytes.
			at, n := rng.IntN(pageHeaderSize), 1+rng.IntN(8)
			if i%2 == 1 {
				at = rng.IntN(c.pageSize - n)
			}
			junk := make([]byte, n)
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			out = append(out, damage{
				name:     fmt.Sprintf("page %d bytes %d+%d=%x", p, at, n, junk),
				page:     p,
				mutate:   func(b []byte) { copy(b[at:], junk) },
				wantOpen: unused(p),
			})
		}
	}
	for p := range 2 {
		// Every byte of the checksummed meta data.
		for at := pageHeaderSize; at < pageHeaderSize+metaSize; at++ {
			out = append(out, damage{
				name:     fmt.Sprintf("meta page %d byte %d flipped", p, at),
				page:     p,
				mutate:   func(b []byte) { b[at] ^= 0xff },
				wantOpen: func(*corpus) bool { return true }, // the other meta page is intact
			})
		}
	}
	for p := 0; p <= pages; p++ {
		out = append(out, damage{
			name:     fmt.Sprintf("truncated to %d pages", p),
			page:     -1,
			truncate: int64(p * c.pageSize),
			wantOpen: func(c *corpus) bool { return uint64(p) >= c.info.hwm },
		})
	}
	return out
}

// TestEveryPageDamaged damages every page of a real store in turn, in
// every way damages lists. Open never panics; it either refuses with an
// error matching ErrCorrupt that names state.db, found before bbolt maps
// the file, leaving the file as it was; or it opens, and then every value
// reads back as written (the state after the last transaction, or, if a
// meta page was damaged, possibly after the one before, with a warning).
// Damage to free pages and beyond the high-water mark is always opened.
func TestEveryPageDamaged(t *testing.T) {
	t.Parallel()
	c := newCorpus(t)
	all := c.damages()
	t.Logf("%d pages of %d bytes (high-water mark %d, %d free), %d cases", len(c.state)/c.pageSize, c.pageSize, c.info.hwm, countPages(c.info, pageFree), len(all))

	cases := make(chan damage)
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		opened, refused   int
		messages          = map[string]int{}
		fallbacks, intact int
	)
	for range runtime.GOMAXPROCS(0) {
		dir := c.copyTo(t)
		path := filepath.Join(dir, StateFile)
		wg.Go(func() {
			for d := range cases {
				ok, fallback, msg := c.try(t, dir, path, d)
				mu.Lock()
				if ok {
					opened++
					if fallback {
						fallbacks++
					} else {
						intact++
					}
				} else {
					refused++
					messages[msg]++
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range all {
		cases <- d
	}
	close(cases)
	wg.Wait()
	t.Logf("opened %d (%d as after the previous transaction), refused %d", opened, fallbacks, refused)
	if testing.Verbose() {
		for m, n := range messages {
			t.Logf("%4d× %s", n, m)
		}
	}
}

func countPages(info *stateInfo, state uint8) int {
	n := 0
	for _, s := range info.pages {
		if s == state {
			n++
		}
	}
	return n
}

// try applies d to the store in dir, opens it, checks the outcome and
// restores the file. It returns whether Open succeeded, whether it fell
// back to the previous transaction, and the refusal's message kind.
func (c *corpus) try(t *testing.T, dir, path string, d damage) (ok, fallback bool, kind string) {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: panic: %v", d.name, r)
		}
	}()
	var damaged []byte
	if d.page >= 0 {
		off := d.page * c.pageSize
		pg := bytes.Clone(c.state[off : off+c.pageSize])
		d.mutate(pg)
		if err := writeAt(path, pg, int64(off)); err != nil {
			t.Errorf("%s: %v", d.name, err)
			return
		}
		damaged = bytes.Clone(c.state)
		copy(damaged[off:], pg)
	} else {
		if err := os.Truncate(path, d.truncate); err != nil {
			t.Errorf("%s: %v", d.name, err)
			return
		}
		damaged = c.state[:d.truncate]
	}
	defer func() {
		if ok || d.page < 0 {
			writeFile(t, path, c.state)
		} else {
			writeAt(path, c.state[d.page*c.pageSize:(d.page+1)*c.pageSize], int64(d.page*c.pageSize))
		}
	}()

	var logs bytes.Buffer
	db, err := Open(dir, c.sealer, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, ErrRolledBack) && d.page >= 0 && d.page < 2:
			// Damage to the newer meta page makes bbolt fall back to the previous
			// transaction, which lost an acknowledged commit: refused as a rollback.
			if !regexp.MustCompile(`state version (\d+), but this store reached version \d+`).MatchString(msg) {
				t.Errorf("%s: Open error = %v, want it to name the versions", d.name, err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
				t.Errorf("%s: a refused Open changed %s", d.name, StateFile)
			}
			return false, true, errorKind(msg)
		case !errors.Is(err, ErrCorrupt):
			t.Errorf("%s: Open error = %v, want one matching ErrCorrupt", d.name, err)
		case !strings.Contains(msg, StateFile) || !strings.Contains(msg, "it was left unchanged"):
			t.Errorf("%s: Open error = %v, want it to name %s and say it was left unchanged", d.name, err, StateFile)
		case strings.Contains(msg, "bbolt failed"):
			t.Errorf("%s: Open error = %v, want the damage found before bbolt reads the file", d.name, err)
		case d.wantOpen(c):
			t.Errorf("%s: Open error = %v, want the store opened: nothing uses that page", d.name, err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
			t.Errorf("%s: a refused Open changed %s", d.name, StateFile)
		}
		return false, false, errorKind(msg)
	}
	defer db.Close()
	got, err := readAll(db)
	if err != nil {
		t.Errorf("%s: Open succeeded, then reading it: %v", d.name, err)
		return true, false, ""
	}
	switch {
	case got.equal(c.final):
	case d.page < 2 && d.page >= 0 && got.equal(c.previous):
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "that last commit is lost") {
			t.Errorf("%s: Open fell back to the previous transaction without a warning; logs:\n%s", d.name, logs.String())
		}
		fallback = true
	default:
		t.Errorf("%s: Open succeeded but the data differs from what was written", d.name)
	}
	return true, fallback, ""
}

// errorKind shortens an error message to its kind, for the verbose
// summary: numbers and quoted text replaced, the remedy cut.
func errorKind(msg string) string {
	msg = kindNumbers.ReplaceAllString(kindQuoted.ReplaceAllString(msg, `"…"`), "N")
	msg, _, _ = strings.Cut(msg, "; it was left unchanged")
	return msg
}

var (
	kindNumbers = regexp.MustCompile(`(0x)?[0-9a-f]*[0-9][0-9a-f]*`)
	kindQuoted  = regexp.MustCompile(`"(\\.|[^"\\])*"`)
)

func writeAt(path string, b []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, off)
	return errors.Join(err, f.Close())
}
