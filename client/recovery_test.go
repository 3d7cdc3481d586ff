package client

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/recovery"
)

// FuzzParseChallengeFile: no panic; errors match recovery.ErrMalformed; an accepted file
// re-encodes to one that is accepted again with the same nonce.
func FuzzParseChallengeFile(f *testing.F) {
	seed, err := os.ReadFile("testdata/challenge-file.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"cloister-recovery-challenge-v1-file","nonce":"00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, nonce, err := ParseChallengeFile(b)
		if err != nil {
			if !errors.Is(err, recovery.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := json.Marshal(cf)
		if err != nil {
			t.Fatal(err)
		}
		_, n2, err := ParseChallengeFile(again)
		if err != nil || n2 != nonce {
			t.Fatalf("re-encoded challenge file: %v", err)
		}
	})
}

func TestChallengeFileSeed(t *testing.T) {
	b, err := os.ReadFile("testdata/challenge-file.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseChallengeFile(b); err != nil {
		t.Fatal(err)
	}
	var ch api.RecoveryChallenge
	ch.Challenge.Format = "other"
	if _, err := VerifyRecoveryChallenge(&ch, nil, [32]byte{}, Expect{}); !errors.Is(err, recovery.ErrMalformed) {
		t.Errorf("VerifyRecoveryChallenge of a malformed challenge: %v", err)
	}
}
