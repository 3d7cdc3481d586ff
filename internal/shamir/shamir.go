// Package shamir splits a secret into n shares of which any k recover it and fewer reveal
// nothing (Shamir's scheme over GF(2^8), byte by byte). The Coordinator splits its data key
// among recovery key holders with it.
//
// Field arithmetic uses no tables and no branches on secret data, so its timing does not
// depend on the secret or the shares.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// MaxShares is the largest n: share x-coordinates are the nonzero bytes.
const MaxShares = 255

// A Share is one share: its x-coordinate (1..255) followed by one y-value per secret byte.
type Share []byte

// Split returns n shares of secret, any k of which recover it; 2 <= k <= n <= MaxShares.
// Share i (from 0) has x-coordinate i+1.
func Split(secret []byte, n, k int) ([]Share, error) {
	switch {
	case len(secret) == 0:
		return nil, errors.New("shamir: empty secret")
	case k < 2 || k > n || n > MaxShares:
		return nil, fmt.Errorf("shamir: %d of %d shares: expected 2 <= threshold <= shares <= %d", k, n, MaxShares)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = make(Share, 1+len(secret))
		shares[i][0] = byte(i + 1)
	}
	coef := make([]byte, k) // the polynomial of one secret byte: coef[0] is the byte
	defer clear(coef)
	for j, s := range secret {
		coef[0] = s
		if _, err := rand.Read(coef[1:]); err != nil {
			return nil, fmt.Errorf("shamir: %w", err)
		}
		for _, sh := range shares {
			sh[1+j] = eval(coef, sh[0])
		}
	}
	return shares, nil
}

// Combine recovers the secret from at least the threshold number of distinct shares of one
// split. Fewer shares, or shares of different splits, give a wrong secret without an error:
// the caller must check the result (the Coordinator's data key opens its sealed state or not).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("shamir: %d shares; expected at least 2", len(shares))
	}
	size := len(shares[0])
	seen := map[byte]bool{}
	for i, sh := range shares {
		switch {
		case len(sh) < 2 || len(sh) != size:
			return nil, fmt.Errorf("shamir: share %d is %d bytes; expected %d like the first, at least 2", i, len(sh), size)
		case sh[0] == 0:
			return nil, fmt.Errorf("shamir: share %d has x-coordinate 0", i)
		case seen[sh[0]]:
			return nil, fmt.Errorf("shamir: share %d repeats x-coordinate %d", i, sh[0])
		}
		seen[sh[0]] = true
	}
	// Lagrange interpolation at 0: secret = sum y_i * prod_{m != i} x_m / (x_m - x_i);
	// subtraction is XOR in GF(2^8).
	basis := make([]byte, len(shares))
	for i, si := range shares {
		num, den := byte(1), byte(1)
		for m, sm := range shares {
			if m != i {
				num = mul(num, sm[0])
				den = mul(den, sm[0]^si[0])
			}
		}
		basis[i] = mul(num, inv(den))
	}
	secret := make([]byte, size-1)
	for j := range secret {
		var v byte
		for i, sh := range shares {
			v ^= mul(sh[1+j], basis[i])
		}
		secret[j] = v
	}
	return secret, nil
}

// eval evaluates the polynomial coef at x (Horner's rule).
func eval(coef []byte, x byte) byte {
	var y byte
	for i := len(coef) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coef[i]
	}
	return y
}

// mul multiplies in GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1, without branches.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		hi := -(a >> 7) // 0xff when the top bit is set
		a = a<<1 ^ 0x1b&hi
		b >>= 1
	}
	return p
}

// inv returns a^254 = a^-1 (0 for 0), by square-and-multiply with a fixed sequence.
func inv(a byte) byte {
	a2 := mul(a, a)
	a4 := mul(a2, a2)
	a8 := mul(a4, a4)
	a16 := mul(a8, a8)
	a32 := mul(a16, a16)
	a64 := mul(a32, a32)
	a128 := mul(a64, a64)
	return mul(mul(mul(mul(mul(mul(a128, a64), a32), a16), a8), a4), a2)
}
