package enclave

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
)

// KeyBits and KeyExponent are the only RSA key shape SGX enclave signing
// allows: a 3072-bit modulus with public exponent 3.
const (
	KeyBits     = 3072
	KeyExponent = 3
)

// maxKeySize bounds a PEM key file, in bytes.
const maxKeySize = 64 << 10

// GenerateKey returns a new RSA-3072 key with public exponent 3 from
// crypto/rand. The standard library only generates keys with exponent
// 65537, so GenerateKey picks primes p and q itself such that p-1 and q-1
// are not divisible by 3 and n = pq has exactly 3072 bits. It takes about a
// second.
func GenerateKey() (*rsa.PrivateKey, error) {
	e := big.NewInt(KeyExponent)
	three := big.NewInt(3)
	one := big.NewInt(1)
	prime := func() (*big.Int, error) {
		for {
			p, err := rand.Prime(rand.Reader, KeyBits/2)
			if err != nil {
				return nil, fmt.Errorf("enclave: generating prime: %w", err)
			}
			// p-1 is divisible by 3 exactly when p ≡ 1 (mod 3).
			if new(big.Int).Mod(p, three).Cmp(one) != 0 {
				return p, nil
			}
		}
	}
	for {
		p, err := prime()
		if err != nil {
			return nil, err
		}
		q, err := prime()
		if err != nil {
			return nil, err
		}
		n := new(big.Int).Mul(p, q)
		// FIPS 186-5 asks |p-q| > 2^(nlen/2-100); random primes all but surely are.
		if n.BitLen() != KeyBits || new(big.Int).Sub(p, q).CmpAbs(new(big.Int).Lsh(one, KeyBits/2-100)) <= 0 {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: KeyExponent}, D: d, Primes: []*big.Int{p, q}}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return nil, fmt.Errorf("enclave: generated key does not validate: %w", err)
		}
		return key, nil
	}
}

// MarshalKey returns key as a PEM "RSA PRIVATE KEY" block (PKCS #1), the
// format gramine-sgx-gen-private-key writes and gramine-sgx-sign reads.
func MarshalKey(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// ParseKey reads an unencrypted PEM private key of at most 64 KiB: an
// "RSA PRIVATE KEY" (PKCS #1) or a "PRIVATE KEY" (PKCS #8, as OpenSSL 3
// writes) block, with nothing but white space after it. It returns an
// error wrapping [ErrTooLarge] or [ErrMalformed] for input it cannot read
// and [ErrInvalid] for a key that is not RSA-3072 with exponent 3. Errors
// never contain key material.
func ParseKey(b []byte) (*rsa.PrivateKey, error) {
	if len(b) > maxKeySize {
		return nil, fmt.Errorf("%w: key file: expected at most %d bytes, found %d", ErrTooLarge, maxKeySize, len(b))
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: key file: expected a PEM block, found none", ErrMalformed)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: key file: expected one PEM block, found more data after it", ErrMalformed)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: key file: PEM headers found; encrypted keys are not supported", ErrMalformed)
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: key file: not a PKCS #1 RSA private key: %w", ErrMalformed, err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: key file: not a PKCS #8 private key: %w", ErrMalformed, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: key file: expected an RSA key, found %T", ErrInvalid, k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("%w: key file: expected PEM type \"RSA PRIVATE KEY\" or \"PRIVATE KEY\", found %q",
			ErrMalformed, block.Type)
	}
	if err := checkPublicKey(&key.PublicKey); err != nil {
		return nil, fmt.Errorf("enclave: key file: %w", err)
	}
	return key, nil
}

// checkPublicKey returns an error wrapping [ErrInvalid] unless pub has a
// 3072-bit odd modulus and exponent 3.
func checkPublicKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return fmt.Errorf("%w: expected an RSA-%d key with exponent %d, found none", ErrInvalid, KeyBits, KeyExponent)
	}
	if pub.N.BitLen() != KeyBits || pub.E != KeyExponent || pub.N.Bit(0) == 0 {
		return fmt.Errorf("%w: expected an RSA-%d key with exponent %d, found a %d-bit %s modulus with exponent %d",
			ErrInvalid, KeyBits, KeyExponent, pub.N.BitLen(), parity(pub.N), pub.E)
	}
	return nil
}

func parity(n *big.Int) string {
	if n.Bit(0) == 0 {
		return "even"
	}
	return "odd"
}

// MRSigner returns the SGX signer identity of pub: SHA-256 of its modulus as
// 384 little-endian bytes, as SGX defines MRSIGNER. A modulus longer than
// 3072 bits is hashed at its own length.
func MRSigner(pub *rsa.PublicKey) [32]byte {
	le := pub.N.Bytes()
	if len(le) < KeyBits/8 {
		le = pub.N.FillBytes(make([]byte, KeyBits/8))
	}
	for i, j := 0, len(le)-1; i < j; i, j = i+1, j-1 {
		le[i], le[j] = le[j], le[i]
	}
	return sha256.Sum256(le)
}
