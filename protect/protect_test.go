package protect

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the generator")

// testKey is the file key of every test vector: bytes 0x00..0x1f.
var testKey = func() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

// pattern returns n deterministic plaintext bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func encrypt(t testing.TB, plain []byte, path string, version uint64) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Encrypt(&out, bytes.NewReader(plain), testKey, path, version); err != nil {
		t.Fatalf("Encrypt(%d bytes, %q, %d): %v", len(plain), path, version, err)
	}
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize, 3*ChunkSize + 7}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plain := pattern(n)
			ct := encrypt(t, plain, "/etc/app/key.pem", 3)
			if got, want := int64(len(ct)), EncryptedSize(int64(n), "/etc/app/key.pem"); got != want {
				t.Errorf("len(ciphertext) = %d, EncryptedSize = %d", got, want)
			}
			if bytes.Contains(ct, plain[:min(n, 64)]) && n >= 16 {
				t.Errorf("ciphertext contains the plaintext")
			}
			var out bytes.Buffer
			v, err := Decrypt(&out, bytes.NewReader(ct), testKey, "/etc/app/key.pem")
			if err != nil || v != 3 || !bytes.Equal(out.Bytes(), plain) {
				t.Fatalf("Decrypt = %d bytes, version %d, %v; want %d bytes, version 3, nil", out.Len(), v, err, n)
			}
			all, v, err := DecryptAll(bytes.NewReader(ct), testKey, "/etc/app/key.pem", int64(n))
			if err != nil || v != 3 || !bytes.Equal(all, plain) {
				t.Fatalf("DecryptAll(limit %d) = %d bytes, version %d, %v", n, len(all), v, err)
			}
			if again := encrypt(t, plain, "/etc/app/key.pem", 3); !bytes.Equal(again, ct) {
				t.Errorf("Encrypt is not deterministic")
			}
		})
	}
}

func TestEncryptWithSalt(t *testing.T) {
	plain := pattern(ChunkSize + 10)
	det := encrypt(t, plain, "/a", 1)
	salt, err := DeriveSalt(testKey, "/a", 1, sha256.Sum256(plain))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := EncryptWithSalt(&out, bytes.NewReader(plain), testKey, "/a", 1, salt); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), det) {
		t.Errorf("EncryptWithSalt(DeriveSalt(...)) differs from Encrypt")
	}
	out.Reset()
	other := salt
	other[0] ^= 1
	if err := EncryptWithSalt(&out, bytes.NewReader(plain), testKey, "/a", 1, other); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(out.Bytes()[headerSize(2):], det[headerSize(2):]) {
		t.Errorf("a different salt gave the same chunks")
	}
	got, _, err := DecryptAll(&out, testKey, "/a", 1<<20)
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("DecryptAll of a random-salt file = %d bytes, %v", len(got), err)
	}
}

// TestDistinctSalts checks that any change of input changes the salt, so no
// two different plaintexts share a per-file key.
func TestDistinctSalts(t *testing.T) {
	base := encrypt(t, []byte("secret"), "/a", 1)
	for name, ct := range map[string][]byte{
		"plaintext": encrypt(t, []byte("secreT"), "/a", 1),
		"path":      encrypt(t, []byte("secret"), "/b", 1),
		"version":   encrypt(t, []byte("secret"), "/a", 2),
	} {
		if bytes.Equal(ct[20:52], base[20:52]) {
			t.Errorf("changing the %s kept the salt", name)
		}
	}
}

func TestDecryptRejects(t *testing.T) {
	plain := pattern(3*ChunkSize + 5)
	const path = "/srv/data.db"
	ct := encrypt(t, plain, path, 9)
	hs := headerSize(len(path))
	chunk := ChunkSize + TagSize
	other := encrypt(t, pattern(3*ChunkSize + 5)[1:], path, 9)
	flip := func(off int) []byte {
		b := bytes.Clone(ct)
		b[off] ^= 0x40
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		data []byte
		key  []byte
		path string
		want error
	}{
		{"empty input", nil, testKey, path, ErrFormat},
		{"magic", flip(0), testKey, path, ErrFormat},
		{"format version", flip(11), testKey, path, ErrFormat},
		{"path length zero", cat(ct[:52], []byte{0, 0}, ct[54:]), testKey, path, ErrFormat},
		{"path length too big", cat(ct[:52], []byte{0xff, 0xff}, ct[54:]), testKey, path, ErrFormat},
		{"version", flip(19), testKey, path, ErrKey},
		{"salt", flip(30), testKey, path, ErrKey},
		{"path in header", flip(56), testKey, path, ErrKey},
		{"header mac", flip(hs - 1), testKey, path, ErrKey},
		{"wrong key", ct, bytes.Repeat([]byte{7}, KeySize), path, ErrKey},
		{"moved", ct, testKey, "/srv/other.db", ErrPath},
		{"header only", ct[:hs], testKey, path, ErrTruncated},
		{"cut inside header", ct[:hs-1], testKey, path, ErrTruncated},
		{"cut inside tag", ct[:hs+5], testKey, path, ErrTruncated},
		{"cut after chunk 0", ct[:hs+chunk], testKey, path, ErrTruncated},
		{"cut after chunk 2", ct[:hs+3*chunk], testKey, path, ErrTruncated},
		{"cut inside final chunk", ct[:len(ct)-1], testKey, path, ErrCorrupt},
		{"appended byte", cat(ct, []byte{0}), testKey, path, ErrCorrupt},
		{"appended chunk", cat(ct, ct[hs:hs+chunk]), testKey, path, ErrCorrupt},
		{"chunk byte", flip(hs + 1000), testKey, path, ErrCorrupt},
		{"chunk tag", flip(hs + chunk - 1), testKey, path, ErrCorrupt},
		{"final chunk", flip(len(ct) - 1), testKey, path, ErrCorrupt},
		{"swapped chunks", cat(ct[:hs], ct[hs+chunk:hs+2*chunk], ct[hs:hs+chunk], ct[hs+2*chunk:]), testKey, path, ErrCorrupt},
		{"dropped chunk", cat(ct[:hs+chunk], ct[hs+2*chunk:]), testKey, path, ErrCorrupt},
		{"chunk from another file", cat(ct[:hs+chunk], other[hs+chunk:hs+2*chunk], ct[hs+2*chunk:]), testKey, path, ErrCorrupt},
		{"header from another file", cat(other[:hs], ct[hs:]), testKey, path, ErrCorrupt},
		{"plaintext file", []byte("password=hunter2 and a lot more secret text to fill a header"), testKey, path, ErrFormat},
		{"short key", ct, testKey[:16], path, ErrArgument},
		{"relative path", ct, testKey, "srv/data.db", ErrArgument},
		{"unclean path", ct, testKey, "/srv/../srv/data.db", ErrArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Decrypt(&out, bytes.NewReader(tc.data), tc.key, tc.path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks file bytes", err)
			}
			got, _, err := DecryptAll(bytes.NewReader(tc.data), tc.key, tc.path, 1<<30)
			if got != nil || !errors.Is(err, tc.want) {
				t.Errorf("DecryptAll = %d bytes, %v; want nil, %v", len(got), err, tc.want)
			}
		})
	}
}

func TestDecryptAllLimit(t *testing.T) {
	ct := encrypt(t, pattern(ChunkSize+1), "/a", 1)
	for _, limit := range []int64{0, 100, ChunkSize} {
		if got, _, err := DecryptAll(bytes.NewReader(ct), testKey, "/a", limit); got != nil || !errors.Is(err, ErrTooLarge) {
			t.Errorf("DecryptAll(limit %d) = %d bytes, %v; want ErrTooLarge", limit, len(got), err)
		}
	}
	if _, _, err := DecryptAll(bytes.NewReader(ct), testKey, "/a", -1); !errors.Is(err, ErrArgument) {
		t.Errorf("DecryptAll(limit -1) = %v, want ErrArgument", err)
	}
}

func TestEncryptArguments(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		path string
	}{
		{"no key", nil, "/a"},
		{"long key", make([]byte, 33), "/a"},
		{"empty path", testKey, ""},
		{"root", testKey, "/"},
		{"relative", testKey, "a"},
		{"trailing slash", testKey, "/a/"},
		{"nul", testKey, "/a\x00b"},
		{"too long", testKey, "/" + strings.Repeat("a", MaxPathLen)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Encrypt(io.Discard, strings.NewReader("x"), tc.key, tc.path, 1); !errors.Is(err, ErrArgument) {
				t.Errorf("Encrypt = %v, want ErrArgument", err)
			}
			if err := EncryptWithSalt(io.Discard, strings.NewReader("x"), tc.key, tc.path, 1, [SaltSize]byte{}); !errors.Is(err, ErrArgument) {
				t.Errorf("EncryptWithSalt = %v, want ErrArgument", err)
			}
			if _, err := DeriveSalt(tc.key, tc.path, 1, [32]byte{}); !errors.Is(err, ErrArgument) {
				t.Errorf("DeriveSalt = %v, want ErrArgument", err)
			}
		})
	}
}

// changingReader yields different bytes after every seek to the start.
type changingReader struct {
	*bytes.Reader
	data []byte
}

func (c *changingReader) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		c.data[0]++
		c.Reader = bytes.NewReader(c.data)
	}
	return c.Reader.Seek(off, whence)
}

func TestEncryptSourceChanged(t *testing.T) {
	data := pattern(1000)
	r := &changingReader{Reader: bytes.NewReader(data), data: data}
	if err := Encrypt(io.Discard, r, testKey, "/a", 1); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("Encrypt of a changing input = %v, want ErrSourceChanged", err)
	}
}

func TestEncryptFromOffset(t *testing.T) {
	r := bytes.NewReader([]byte("skip:payload"))
	if _, err := r.Seek(5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Encrypt(&out, r, testKey, "/a", 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), encrypt(t, []byte("payload"), "/a", 1)) {
		t.Errorf("Encrypt from offset 5 differs from Encrypt of the rest")
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	plain := pattern(2 * ChunkSize)
	ct := encrypt(t, plain, "/a", 1)
	// Encrypt writes the header and two chunks; Decrypt writes two chunks.
	for after := range 3 {
		err := Encrypt(&failWriter{after: after}, bytes.NewReader(plain), testKey, "/a", 1)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("Encrypt with a writer failing after %d writes = %v, want disk full", after, err)
		}
	}
	for after := range 2 {
		_, err := Decrypt(&failWriter{after: after}, bytes.NewReader(ct), testKey, "/a")
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("Decrypt with a writer failing after %d writes = %v, want disk full", after, err)
		}
	}
}

// TestDecryptAllocs checks that Decrypt allocates per call, never per chunk.
func TestDecryptAllocs(t *testing.T) {
	allocs := func(chunks int) float64 {
		ct := encrypt(t, pattern(chunks*ChunkSize), "/a", 1)
		r := bytes.NewReader(ct)
		return testing.AllocsPerRun(20, func() {
			r.Reset(ct)
			if _, err := Decrypt(io.Discard, r, testKey, "/a"); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, many := allocs(1), allocs(16)
	if many > one || one > 50 {
		t.Errorf("Decrypt allocates %v times for 1 chunk and %v for 16; want at most 50, independent of size", one, many)
	}
}

// vectors are the committed test vectors in testdata/, all under testKey.
var vectors = []struct {
	file    string
	path    string
	version uint64
	plain   []byte
}{
	{"empty.pf", "/etc/empty", 1, nil},
	{"hello.pf", "/etc/app/secret.conf", 7, []byte("hello, protected world\n")},
	{"two-chunks.pf", "/var/lib/app/data.bin", 1<<40 + 3, pattern(ChunkSize + 100)},
}

// TestVectors pins the format: the committed vectors must decrypt, and the
// encoder must still produce them byte for byte. Run with -update to rewrite
// them after a deliberate format change.
func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.file, func(t *testing.T) {
			name := filepath.Join("testdata", v.file)
			ct := encrypt(t, v.plain, v.path, v.version)
			if *update {
				if err := os.WriteFile(name, ct, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(name)
			if err != nil {
				t.Fatalf("%v (run go test -run TestVectors -update to generate)", err)
			}
			if !bytes.Equal(ct, want) {
				t.Errorf("Encrypt no longer produces %s", name)
			}
			got, version, err := DecryptAll(bytes.NewReader(want), testKey, v.path, 1<<20)
			if err != nil || version != v.version || !bytes.Equal(got, v.plain) {
				t.Errorf("DecryptAll(%s) = %d bytes, version %d, %v", name, len(got), version, err)
			}
		})
	}
}
