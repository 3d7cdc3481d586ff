package protect

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecrypt checks that Decrypt never panics, returns only documented
// errors, and accepts nothing but the valid files it was seeded with: any
// mutation of a protected file must be rejected.
func FuzzDecrypt(f *testing.F) {
	type valid struct {
		path    string
		version uint64
		plain   []byte
	}
	accepted := map[string]valid{}
	for _, v := range vectors {
		ct, err := os.ReadFile(filepath.Join("testdata", v.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct, v.path)
		accepted[string(ct)] = valid{v.path, v.version, v.plain}
	}
	f.Add([]byte(Magic), "/a")
	f.Add([]byte{}, "/a")
	documented := []error{ErrArgument, ErrFormat, ErrKey, ErrPath, ErrTruncated, ErrCorrupt, ErrTooLarge}
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		got, version, err := DecryptAll(bytes.NewReader(data), testKey, path, 1<<20)
		if err != nil {
			for _, e := range documented {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("DecryptAll: undocumented error %v", err)
		}
		want, ok := accepted[string(data)]
		if !ok {
			t.Fatalf("DecryptAll accepted %d bytes that are not a valid file (version %d, path %q)", len(data), version, path)
		}
		if path != want.path || version != want.version || !bytes.Equal(got, want.plain) {
			t.Fatalf("DecryptAll = %d bytes, version %d for %q; want %d bytes, version %d for %q",
				len(got), version, path, len(want.plain), want.version, want.path)
		}
	})
}
