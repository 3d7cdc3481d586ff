package protect

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 16 << 20

func BenchmarkEncrypt(b *testing.B) {
	plain := pattern(benchSize)
	r := bytes.NewReader(plain)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(plain)
		if err := Encrypt(io.Discard, r, testKey, "/bench", 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptWithSalt(b *testing.B) {
	plain := pattern(benchSize)
	r := bytes.NewReader(plain)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(plain)
		if err := EncryptWithSalt(io.Discard, r, testKey, "/bench", 1, [SaltSize]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	ct := encrypt(b, pattern(benchSize), "/bench", 1)
	r := bytes.NewReader(ct)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(ct)
		if _, err := Decrypt(io.Discard, r, testKey, "/bench"); err != nil {
			b.Fatal(err)
		}
	}
}
