package kubestate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// DropEntryForTest returns an inline shard without bucket/key, and a layout naming it, as
// an attacker with write access to Secrets could make them.
func DropEntryForTest(t *testing.T, shard []byte, bucket, key string) (newShard, layout []byte) {
	bs, err := decodeShard(shard, DefaultShardSize)
	if err != nil {
		t.Fatal(err)
	}
	delete(bs[bucket], key)
	newShard = encodeShard(bs)
	sum := sha256.Sum256(newShard)
	layout, err = json.Marshal(layoutDoc{Shards: []shardRef{{SHA256: hex.EncodeToString(sum[:])}}})
	if err != nil {
		t.Fatal(err)
	}
	return newShard, layout
}
