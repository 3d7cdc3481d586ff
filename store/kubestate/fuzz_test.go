package kubestate

import (
	"bytes"
	"testing"
)

// FuzzDecodeShard: any bytes decode to a shard or an error, never a panic, and a shard that
// decodes encodes back to the same bytes (one encoding per set of entries).
func FuzzDecodeShard(f *testing.F) {
	f.Add(encodeShard(buckets{}))
	f.Add(encodeShard(buckets{"b": {"k": []byte("v")}}))
	f.Add(encodeShard(buckets{"counts": {"w1": []byte("12"), "w2": []byte("")}, "pki": {"root": bytes.Repeat([]byte{7}, 300)}}))
	f.Add([]byte(shardMagic + "\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		bs, err := decodeShard(raw, DefaultShardSize)
		if err != nil {
			return
		}
		if again := encodeShard(bs); !bytes.Equal(again, raw) {
			t.Fatalf("decoded shard encodes to %x, want %x", again, raw)
		}
	})
}

func TestDecodeShardErrors(t *testing.T) {
	good := encodeShard(buckets{"a": {"k1": []byte("x"), "k2": []byte("y")}})
	for name, raw := range map[string][]byte{
		"empty":        nil,
		"bad magic":    append([]byte("XXSHARD1"), good[8:]...),
		"truncated":    good[:len(good)-1],
		"trailing":     append(bytes.Clone(good), 0),
		"too large":    bytes.Repeat([]byte{0}, 2<<20),
		"huge count":   []byte(shardMagic + "\x7f\xff\xff\xff"),
		"out of order": encodeOutOfOrder(),
	} {
		if _, err := decodeShard(raw, DefaultShardSize); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
	if _, err := decodeShard(good, DefaultShardSize); err != nil {
		t.Fatal(err)
	}
}

// encodeOutOfOrder is a shard whose two entries are in the wrong order.
func encodeOutOfOrder() []byte {
	a := encodeShard(buckets{"b": {"k2": []byte("y")}})
	b := encodeShard(buckets{"b": {"k1": []byte("x")}})
	out := append([]byte(shardMagic), 0, 0, 0, 2)
	out = append(out, a[12:]...)
	return append(out, b[12:]...)
}
