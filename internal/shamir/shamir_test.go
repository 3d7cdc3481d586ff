package shamir

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestFieldInverse(t *testing.T) {
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Fatalf("%d * inv(%d) = %d", a, a, got)
		}
	}
	// A known AES value: 0x57 * 0x83 = 0xc1 (FIPS 197, 4.2).
	if got := mul(0x57, 0x83); got != 0xc1 {
		t.Fatalf("0x57*0x83 = %#x, want 0xc1", got)
	}
}

func TestSplitCombine(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Every subset of 3, 4 and 5 shares recovers the secret.
	for mask := 0; mask < 32; mask++ {
		var sub []Share
		for i := range 5 {
			if mask&(1<<i) != 0 {
				sub = append(sub, shares[i])
			}
		}
		if len(sub) < 2 {
			continue
		}
		got, err := Combine(sub)
		if err != nil {
			t.Fatal(err)
		}
		if ok := bytes.Equal(got, secret); ok != (len(sub) >= 3) {
			t.Errorf("%d shares (mask %05b): recovered = %v; want %v", len(sub), mask, ok, len(sub) >= 3)
		}
	}
}

// Two shares of a 3-of-n split say nothing of the secret: for a fixed pair of shares, every
// value of a secret byte is consistent with some third share.
func TestBelowThresholdRevealsNothing(t *testing.T) {
	shares, _ := Split([]byte{42}, 3, 3)
	possible := map[byte]bool{}
	for y := range 256 {
		got, _ := Combine([]Share{shares[0], shares[1], {3, byte(y)}})
		possible[got[0]] = true
	}
	if len(possible) != 256 {
		t.Fatalf("with 2 of 3 shares fixed, %d secret values remain possible; want all 256", len(possible))
	}
}

func TestRefusals(t *testing.T) {
	shares, _ := Split([]byte("key"), 3, 2)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"threshold 1", func() error { _, err := Split([]byte("k"), 3, 1); return err }(), "expected 2 <= threshold"},
		{"threshold above n", func() error { _, err := Split([]byte("k"), 2, 3); return err }(), "3 of 2 shares"},
		{"too many", func() error { _, err := Split([]byte("k"), 256, 2); return err }(), "<= 255"},
		{"empty", func() error { _, err := Split(nil, 3, 2); return err }(), "empty secret"},
		{"one share", func() error { _, err := Combine(shares[:1]); return err }(), "expected at least 2"},
		{"repeated", func() error { _, err := Combine([]Share{shares[0], shares[0]}); return err }(), "repeats x-coordinate 1"},
		{"sizes", func() error { _, err := Combine([]Share{shares[0], shares[1][:2]}); return err }(), "share 1 is 2 bytes; expected 4"},
		{"x zero", func() error { _, err := Combine([]Share{shares[0], {0, 1, 2, 3}}); return err }(), "x-coordinate 0"},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.name, tt.err, tt.want)
		}
	}
}

func FuzzCombine(f *testing.F) {
	shares, _ := Split([]byte("0123456789abcdef0123456789abcdef"), 3, 2)
	f.Add([]byte(shares[0]), []byte(shares[1]))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		got, err := Combine([]Share{a, b})
		if err == nil && len(got) != len(a)-1 {
			t.Fatalf("Combine of %d-byte shares gave %d bytes", len(a), len(got))
		}
	})
}

func BenchmarkSplit32Of5(b *testing.B) {
	secret := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Split(secret, 5, 3); err != nil {
			b.Fatal(err)
		}
	}
}
