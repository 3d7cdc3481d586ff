package recovery

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testHolder makes a holder key: RSA-3072 (one, generated once: slow) or a fresh X25519.
func testHolder(t testing.TB, name string, useRSA bool) (HolderKey, PrivateKey) {
	t.Helper()
	var priv PrivateKey
	if useRSA {
		rsaOnce.Do(func() {
			var err error
			if rsaKey, err = rsa.GenerateKey(rand.Reader, RSABits); err != nil {
				panic(err)
			}
		})
		priv = rsaKey
	} else {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return HolderKey{Name: name, PublicKey: der}, priv
}

type fixture struct {
	key     []byte
	rec     *Record
	shares  []*Share
	privs   []PrivateKey
	session string
	skey    *ecdh.PrivateKey
	ch      *Challenge
}

func newFixture(t testing.TB, n, k int) *fixture {
	t.Helper()
	f := &fixture{key: make([]byte, KeySize)}
	rand.Read(f.key)
	var holders []HolderKey
	for i := range n {
		h, p := testHolder(t, fmt.Sprintf("h%d", i+1), i == 0)
		holders = append(holders, h)
		f.privs = append(f.privs, p)
	}
	var err error
	f.rec, f.shares, err = Split(f.key, strings.Repeat("ab", 32), holders, k, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f.session, f.skey, err = NewSession(); err != nil {
		t.Fatal(err)
	}
	f.ch = &Challenge{Format: ChallengeFormat, Session: f.session, SessionKey: f.skey.PublicKey().Bytes(), Deployment: f.rec.Deployment,
		Generation: f.rec.Generation, Threshold: k, Holders: f.rec.Names()}
	return f
}

func (f *fixture) submit(t testing.TB, i int) *Submission {
	t.Helper()
	der, _ := x509.MarshalPKIXPublicKey(f.privs[i].Public())
	y, err := f.shares[i].Decrypt(f.privs[i], der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSubmission(f.shares[i], y, f.privs[i], f.ch)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRoundTrip: 5 holders (one RSA, four X25519), threshold 3: share files survive encoding,
// submissions open, three shares give the key back, the record's MAC checks under it.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t, 5, 3)
	raw, _ := json.Marshal(f.rec)
	rec, err := ParseRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	ys := map[int][]byte{}
	for _, i := range []int{0, 2, 4} {
		b, _ := json.Marshal(f.submit(t, i))
		s, err := ParseSubmission(b)
		if err != nil {
			t.Fatal(err)
		}
		h, y, err := Open(s, rec, f.session, f.skey)
		if err != nil {
			t.Fatalf("Open(holder %d): %v", i, err)
		}
		ys[h.Index] = y
	}
	key, err := rec.Combine(ys)
	if err != nil || !bytes.Equal(key, f.key) {
		t.Fatalf("Combine = %x, %v; want the key", key, err)
	}
	if err := rec.CheckMAC(key); err != nil {
		t.Fatal(err)
	}
	two := map[int][]byte{1: ys[1], 3: ys[3]}
	if _, err := rec.Combine(two); err == nil {
		t.Error("Combine accepted 2 shares of a 3-of-5 split")
	}
}

func TestThresholdOne(t *testing.T) {
	f := newFixture(t, 2, 1)
	_, y, err := Open(f.submit(t, 1), f.rec, f.session, f.skey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.rec.Combine(map[int][]byte{2: y})
	if err != nil || !bytes.Equal(key, f.key) {
		t.Fatalf("1-of-2: %x, %v", key, err)
	}
}

// TestRefusals: every way a submission can be wrong is refused with its own error.
func TestRefusals(t *testing.T) {
	f := newFixture(t, 3, 2)
	other := newFixture(t, 3, 2)
	cases := []struct {
		name string
		mod  func(s *Submission) (*Record, string, *ecdh.PrivateKey)
		want error
	}{
		{"wrong deployment", func(s *Submission) (*Record, string, *ecdh.PrivateKey) {
			r := *f.rec
			r.Deployment = strings.Repeat("cd", 32)
			return &r, f.session, f.skey
		}, ErrWrongDeployment},
		{"older split", func(s *Submission) (*Record, string, *ecdh.PrivateKey) {
			r := *f.rec
			r.Generation = other.rec.Generation
			return &r, f.session, f.skey
		}, ErrStaleShare},
		{"other session", func(s *Submission) (*Record, string, *ecdh.PrivateKey) { return f.rec, other.session, other.skey }, ErrWrongSession},
		{"other session key", func(s *Submission) (*Record, string, *ecdh.PrivateKey) { return f.rec, f.session, other.skey }, ErrBadSignature},
		{"unknown holder", func(s *Submission) (*Record, string, *ecdh.PrivateKey) {
			s.Holder = "mallory"
			return f.rec, f.session, f.skey
		}, ErrUnknownHolder},
		{"signature of another holder", func(s *Submission) (*Record, string, *ecdh.PrivateKey) {
			s.Holder, s.Index = "h3", 3
			return f.rec, f.session, f.skey
		}, ErrBadSignature},
		{"changed share", func(s *Submission) (*Record, string, *ecdh.PrivateKey) {
			s.Encrypted[len(s.Encrypted)-1] ^= 1
			return f.rec, f.session, f.skey
		}, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := f.submit(t, 1)
			rec, sess, key := tc.mod(s)
			if _, _, err := Open(s, rec, sess, key); !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}

	// An attacker's own share, signed with the attacker's key: refused (GO-2025-3450).
	mallory, mpriv := testHolder(t, "h2", false)
	fake := *f.shares[1]
	y := make([]byte, KeySize)
	s, err := NewSubmission(&fake, y, mpriv, f.ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(s, f.rec, f.session, f.skey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("attacker-signed share: %v, want ErrBadSignature (%s)", err, mallory.Name)
	}
	// The holder's own key over a share that is not the holder's: refused by the commitment.
	s, err = NewSubmission(f.shares[1], y, f.privs[1], f.ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(s, f.rec, f.session, f.skey); !errors.Is(err, ErrShareMismatch) {
		t.Fatalf("forged share signed by its holder: %v, want ErrShareMismatch", err)
	}
	// A changed record is caught by its MAC.
	r := *f.rec
	r.Threshold = 1
	if err := r.CheckMAC(f.key); err == nil {
		t.Error("CheckMAC accepted a changed record")
	}
}

func TestDecryptErrors(t *testing.T) {
	f := newFixture(t, 2, 2)
	der1, _ := x509.MarshalPKIXPublicKey(f.privs[1].Public())
	if _, err := f.shares[0].Decrypt(f.privs[1], der1); err == nil || !strings.Contains(err.Error(), "own private key") {
		t.Errorf("Decrypt with another holder's key: %v", err)
	}
	s := *f.shares[1]
	s.Threshold = 1
	if _, err := s.Decrypt(f.privs[1], der1); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("Decrypt of a share with a changed context: %v", err)
	}
}

func TestParsePrivateKey(t *testing.T) {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	p, pub, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil || p == nil || len(pub) == 0 {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ = x509.MarshalPKCS8PrivateKey(small)
	if _, _, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil || !strings.Contains(err.Error(), "3072") {
		t.Errorf("RSA-2048: %v", err)
	}
	if _, _, err := ParsePrivateKey([]byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}
