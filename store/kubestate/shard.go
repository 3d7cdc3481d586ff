package kubestate

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cloister-dev/cloister/store"
)

// A shard is encoded as
//
//	"CLSHARD1" ‖ count (4 bytes) ‖ count × (bucket length (2) ‖ bucket ‖ key length (2) ‖ key ‖ value length (4) ‖ value)
//
// big-endian, entries sorted by bucket and key, so that the same entries always encode to the
// same bytes (and the same digest). Values are sealed by the store.

const shardMagic = "CLSHARD1"

func encodeShard(bs buckets) []byte {
	out := []byte(shardMagic)
	count := 0
	for _, keys := range bs {
		count += len(keys)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(count))
	for _, b := range slices.Sorted(keysOf(bs)) {
		keys := bs[b]
		for _, k := range slices.Sorted(keysOf(keys)) {
			v := keys[k]
			out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
			out = append(out, b...)
			out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
			out = append(out, k...)
			out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
	}
	return out
}

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// decodeShard decodes a shard of at most limit bytes. Its errors match store.ErrCorrupt.
func decodeShard(raw []byte, limit int) (buckets, error) {
	bad := func(format string, args ...any) (buckets, error) {
		return nil, fmt.Errorf("%w: %s", store.ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(raw) > limit {
		return bad("shard is %d bytes, expected at most %d", len(raw), limit)
	}
	if len(raw) < len(shardMagic)+4 || string(raw[:len(shardMagic)]) != shardMagic {
		return bad("shard does not start with %q and an entry count", shardMagic)
	}
	count := binary.BigEndian.Uint32(raw[len(shardMagic):])
	rest := raw[len(shardMagic)+4:]
	// Every entry takes at least 8 bytes plus a 1-byte bucket and key.
	if uint64(count)*10 > uint64(len(rest)) {
		return bad("shard claims %d entries in %d bytes", count, len(rest))
	}
	take := func(n int) ([]byte, bool) {
		if n > len(rest) {
			return nil, false
		}
		b := rest[:n:n]
		rest = rest[n:]
		return b, true
	}
	out := buckets{}
	var lastB, lastK string
	for i := range count {
		lb, ok := take(2)
		if !ok {
			return bad("entry %d: truncated bucket length", i)
		}
		b, ok := take(int(binary.BigEndian.Uint16(lb)))
		if !ok || len(b) == 0 || len(b) > store.MaxBucketNameSize {
			return bad("entry %d: bucket name missing, truncated or longer than %d bytes", i, store.MaxBucketNameSize)
		}
		lk, ok := take(2)
		if !ok {
			return bad("entry %d: truncated key length", i)
		}
		k, ok := take(int(binary.BigEndian.Uint16(lk)))
		if !ok || len(k) == 0 || len(k) > store.MaxKeySize {
			return bad("entry %d: key missing, truncated or longer than %d bytes", i, store.MaxKeySize)
		}
		lv, ok := take(4)
		if !ok {
			return bad("entry %d: truncated value length", i)
		}
		n := binary.BigEndian.Uint32(lv)
		if uint64(n) > uint64(len(rest)) {
			return bad("entry %d (bucket %q key %q): value of %d bytes, only %d left", i, b, k, n, len(rest))
		}
		v, _ := take(int(n))
		bs, ks := string(b), string(k)
		if i > 0 && (bs < lastB || bs == lastB && ks <= lastK) {
			return bad("entry %d (bucket %q key %q) is out of order or repeated", i, bs, ks)
		}
		lastB, lastK = bs, ks
		if out[bs] == nil {
			out[bs] = map[string][]byte{}
		}
		out[bs][ks] = v
	}
	if len(rest) != 0 {
		return bad("%d bytes after the last entry", len(rest))
	}
	return out, nil
}
