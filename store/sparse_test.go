package store

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A sparse state.db whose meta page claims a 16 GiB high-water mark and whose last tree page
// claims every later page as its overflow must be refused before the span is read: reading it
// would allocate 16 GiB.
func TestHugeOverflowClaimRefused(t *testing.T) {
	c := newCorpus(t)
	dir := c.copyTo(t)
	path := filepath.Join(dir, StateFile)
	b := append([]byte(nil), c.state...)
	ps := int64(c.pageSize)
	hwm := uint64(16 << 30 / ps)
	meta := b[int64(c.info.metaPage)*ps+pageHeaderSize:]
	binary.LittleEndian.PutUint64(meta[32:], noFreelist)
	binary.LittleEndian.PutUint64(meta[40:], hwm)
	var last uint64
	for id := len(c.info.pages) - 1; id >= 2; id-- {
		if c.info.pages[id] == pageUsed && uint64(id) != c.info.freelist {
			last = uint64(id)
			for last > 2 && binary.LittleEndian.Uint64(b[int64(last)*ps:]) != last {
				last-- // back to the first page of its overflow run
			}
			break
		}
	}
	h := fnv.New64a()
	h.Write(meta[:metaSummed])
	binary.LittleEndian.PutUint64(meta[56:], h.Sum64())
	binary.LittleEndian.PutUint32(b[int64(last)*ps+12:], uint32(hwm-last-1))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(hwm)*ps); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, c.sealer, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "overflow pages") || !strings.Contains(err.Error(), "expected at most") {
		t.Fatalf("Open = %v; want ErrCorrupt for the overflow claim", err)
	}
}
