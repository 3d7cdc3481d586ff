package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// cache is a bounded map from SHA-256 digests to values, safe for concurrent use. It keeps two
// generations: when the current one is full it becomes the old one and the previous old one is
// dropped, so it never holds more than max entries, and an entry found in the old generation is
// moved to the current one (recently used entries survive). A max of 0 disables it.
type cache[V any] struct {
	mu       sync.Mutex // guards cur and old
	cur, old map[[32]byte]V
	half     int // capacity of one generation
}

func newCache[V any](max int) *cache[V] {
	return &cache[V]{half: max / 2}
}

func (c *cache[V]) get(k [32]byte) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		delete(c.old, k)
		c.putLocked(k, v)
	}
	return v, ok
}

func (c *cache[V]) put(k [32]byte, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *cache[V]) putLocked(k [32]byte, v V) {
	if c.half <= 0 {
		return
	}
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, nil
	}
	if c.cur == nil {
		c.cur = make(map[[32]byte]V)
	}
	c.cur[k] = v
}

// len returns the number of entries held.
func (c *cache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// digester hashes a tag and a sequence of length-prefixed byte strings, so that distinct
// sequences never collide by concatenation. A nil and an empty string hash alike.
type digester struct {
	h hash.Hash
	n [8]byte
}

func newDigester(tag string) *digester {
	d := &digester{h: sha256.New()}
	d.add([]byte(tag))
	return d
}

func (d *digester) add(b []byte) *digester {
	binary.BigEndian.PutUint64(d.n[:], uint64(len(b)))
	d.h.Write(d.n[:])
	d.h.Write(b)
	return d
}

func (d *digester) sum() (out [32]byte) {
	d.h.Sum(out[:0])
	return out
}
