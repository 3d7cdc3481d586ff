package seal

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func fuzzSealer(f *testing.F) *Simulated {
	f.Helper()
	s, err := NewSimulated(filepath.Join(f.TempDir(), "k"))
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzUnseal feeds arbitrary bytes to Unseal: it must never panic, must fail
// only with the documented errors, and anything it accepts must be exactly
// what was sealed.
func FuzzUnseal(f *testing.F) {
	s := fuzzSealer(f)
	for _, seed := range []struct{ plaintext, ad string }{
		{"", ""}, {"the data key", "purpose"}, {string(make([]byte, 64)), "x"},
	} {
		sealed, err := s.Seal([]byte(seed.plaintext), []byte(seed.ad))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed, []byte(seed.ad))
		f.Add(sealed[:len(sealed)-1], []byte(seed.ad))
		f.Add(sealed[:Overhead-1], []byte(seed.ad))
		f.Add(sealed, []byte(seed.ad+"!"))
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte{2, 0, 0}, []byte{})

	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		got, err := s.Unseal(sealed, ad)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuthentication) {
				t.Fatalf("Unseal error %v is neither ErrMalformed nor ErrAuthentication", err)
			}
			if got != nil {
				t.Fatal("Unseal returned bytes with an error")
			}
			return
		}
		// Accepted: the input must be well-formed and re-seal to a blob
		// that unseals to the same plaintext.
		if len(sealed) != len(got)+Overhead || sealed[0] != FormatVersion {
			t.Fatalf("accepted %d-byte input with version %d for a %d-byte plaintext", len(sealed), sealed[0], len(got))
		}
		again, err := s.Seal(got, ad)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := s.Unseal(again, ad); err != nil || !bytes.Equal(back, got) {
			t.Fatalf("round trip of an accepted plaintext failed: %v", err)
		}
	})
}

// FuzzSealRoundTrip checks that every plaintext and additional data round
// trips, and that any single flipped bit is detected.
func FuzzSealRoundTrip(f *testing.F) {
	s := fuzzSealer(f)
	f.Add([]byte("the data key"), []byte("purpose"), uint(0))
	f.Add([]byte{}, []byte{}, uint(100))
	f.Fuzz(func(t *testing.T, plaintext, ad []byte, bit uint) {
		if len(plaintext) > MaxPlaintextSize {
			return
		}
		sealed, err := s.Seal(plaintext, ad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		got, err := s.Unseal(sealed, ad)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("Unseal(Seal(p)) = %x, %v; want %x", got, err, plaintext)
		}
		bit %= uint(len(sealed) * 8)
		sealed[bit/8] ^= 1 << (bit % 8)
		if _, err := s.Unseal(sealed, ad); err == nil {
			t.Fatalf("Unseal accepted input with bit %d flipped", bit)
		}
	})
}
