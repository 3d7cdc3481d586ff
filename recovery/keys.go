package recovery

import (
	"crypto"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// RSABits is the size of every RSA holder key.
const RSABits = 3072

// ParsePublicKey parses a holder's public key, PKIX DER: RSA of [RSABits] bits or X25519.
func ParsePublicKey(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: expected an RSA-3072 or X25519 key (PKIX DER): %v", err)
	}
	return checkPublic(k)
}

func checkPublic(k any) (crypto.PublicKey, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != RSABits {
			return nil, fmt.Errorf("public key: expected RSA of %d bits, found %d bits", RSABits, k.N.BitLen())
		}
		return k, nil
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.X25519() {
			return nil, errors.New("public key: expected X25519, found another ECDH curve")
		}
		return k, nil
	}
	return nil, fmt.Errorf("public key: expected RSA-3072 or X25519, found %T", k)
}

// KeyDigest is the SHA-256 of a public key's PKIX DER, hex: how files name a holder's key.
func KeyDigest(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// PrivateKey is a holder's private key: *rsa.PrivateKey (3072 bits) or *ecdh.PrivateKey
// (X25519).
type PrivateKey interface {
	Public() crypto.PublicKey
}

// ParsePrivateKey reads a holder's private key from PEM: PKCS #8 "PRIVATE KEY" (as `openssl
// genpkey` writes it) or PKCS #1 "RSA PRIVATE KEY". It returns the key and its public key's
// PKIX DER.
func ParsePrivateKey(pemBytes []byte) (PrivateKey, []byte, error) {
	block, rest := pem.Decode(pemBytes)
	switch {
	case block == nil:
		return nil, nil, errors.New("private key: expected a PEM block, found no PEM data")
	case strings.TrimSpace(string(rest)) != "":
		return nil, nil, errors.New("private key: expected one PEM block, found more data after it")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("private key: expected a PEM \"PRIVATE KEY\" block, found %q", bound(block.Type))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("private key: %v", err)
	}
	var priv PrivateKey
	switch k := k.(type) {
	case *rsa.PrivateKey:
		priv = k
	case *ecdh.PrivateKey:
		priv = k
	default:
		return nil, nil, fmt.Errorf("private key: expected RSA-3072 or X25519, found %T", k)
	}
	if _, err := checkPublic(priv.Public()); err != nil {
		return nil, nil, fmt.Errorf("private key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("private key: %v", err)
	}
	return priv, der, nil
}

var (
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// encryptTo encrypts plaintext to pub (RSA-OAEP with label context, or HPKE with info
// context) and names the algorithm.
func encryptTo(pub crypto.PublicKey, context, plaintext []byte) (alg string, ct []byte, err error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, plaintext, context)
		return AlgRSAOAEP, ct, err
	case *ecdh.PublicKey:
		pk, err := hpke.NewDHKEMPublicKey(pub)
		if err != nil {
			return "", nil, err
		}
		ct, err = hpke.Seal(pk, hpkeKDF, hpkeAEAD, context, plaintext)
		return AlgHPKE, ct, err
	}
	return "", nil, fmt.Errorf("recovery: cannot encrypt to a %T", pub)
}

// decryptWith decrypts what encryptTo made for priv's public key.
func decryptWith(priv PrivateKey, alg string, context, ct []byte) ([]byte, error) {
	switch priv := priv.(type) {
	case *rsa.PrivateKey:
		if alg != AlgRSAOAEP {
			return nil, fmt.Errorf("the share is encrypted with %s, but the key given is an RSA key (%s)", bound(alg), AlgRSAOAEP)
		}
		return rsa.DecryptOAEP(sha256.New(), nil, priv, ct, context)
	case *ecdh.PrivateKey:
		if alg != AlgHPKE {
			return nil, fmt.Errorf("the share is encrypted with %s, but the key given is an X25519 key (%s)", bound(alg), AlgHPKE)
		}
		k, err := hpke.NewDHKEMPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return hpke.Open(k, hpkeKDF, hpkeAEAD, context, ct)
	}
	return nil, fmt.Errorf("recovery: cannot decrypt with a %T", priv)
}

// authKey derives the MAC key an X25519 holder and a recovery session share.
func authKey(shared, sessionKey, holderKey []byte) ([]byte, error) {
	info := append([]byte("cloister-recovery-holder-auth-v1\x00"), sessionKey...)
	info = append(info, holderKey...)
	return hkdf.Key(sha256.New, shared, nil, string(info), sha256.Size)
}

// authenticate makes the holder's authenticator of msg for the session whose X25519 public key
// is sessionKey.
func authenticate(priv PrivateKey, sessionKey, msg []byte) (alg string, sig []byte, err error) {
	switch priv := priv.(type) {
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = rsa.SignPSS(rand.Reader, priv, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		return AuthRSAPSS, sig, err
	case *ecdh.PrivateKey:
		sk, err := ecdh.X25519().NewPublicKey(sessionKey)
		if err != nil {
			return "", nil, fmt.Errorf("session key: %v", err)
		}
		shared, err := priv.ECDH(sk)
		if err != nil {
			return "", nil, err
		}
		k, err := authKey(shared, sessionKey, priv.PublicKey().Bytes())
		if err != nil {
			return "", nil, err
		}
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		return AuthX25519HMAC, m.Sum(nil), nil
	}
	return "", nil, fmt.Errorf("recovery: cannot sign with a %T", priv)
}

// checkAuth verifies a holder's authenticator of msg: pub is the holder's public key, session
// the recovery session's private key.
func checkAuth(pub crypto.PublicKey, session *ecdh.PrivateKey, alg string, msg, sig []byte) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if alg != AuthRSAPSS {
			return fmt.Errorf("expected a %s signature from this RSA key, found %s", AuthRSAPSS, bound(alg))
		}
		h := sha256.Sum256(msg)
		if err := rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			return errors.New("the RSA-PSS signature does not verify with the holder's key")
		}
		return nil
	case *ecdh.PublicKey:
		if alg != AuthX25519HMAC {
			return fmt.Errorf("expected a %s authenticator from this X25519 key, found %s", AuthX25519HMAC, bound(alg))
		}
		shared, err := session.ECDH(pub)
		if err != nil {
			return err
		}
		k, err := authKey(shared, session.PublicKey().Bytes(), pub.Bytes())
		if err != nil {
			return err
		}
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		if !hmac.Equal(m.Sum(nil), sig) {
			return errors.New("the X25519 authenticator does not verify with the holder's key and this session")
		}
		return nil
	}
	return fmt.Errorf("cannot check a signature of a %T", pub)
}
