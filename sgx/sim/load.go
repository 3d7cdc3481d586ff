package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cloister-dev/cloister/sgx"
)

// Load reads the simulated platform in dir, checks that its certificates, keys and metadata
// fit together, and precomputes everything a quote needs but its report body and signature.
// Files are size-bounded; errors name the file at fault. A directory without platform.json
// gives an error wrapping [ErrIncomplete].
func Load(dir string) (*Platform, error) {
	return load(dir, false)
}

// LoadForQuotes is [Load] for a process that only quotes and verifies quotes against the
// platform's root, as a launcher does at every start: it reads and checks the metadata, the
// root, the PCK chain and the PCK and attestation keys, and leaves the TCB Signing chain and
// the keys of the CAs and the TCB Signing certificate, which only sign collateral, until
// [Platform.WriteCollateral] needs them (then read and checked as Load does). Its quotes are
// byte for byte those of a platform from Load, but for their random signatures.
func LoadForQuotes(dir string) (*Platform, error) {
	return load(dir, true)
}

func load(dir string, quotesOnly bool) (*Platform, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load simulated platform: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("load simulated platform: %w", err)
	}
	defer root.Close()
	p := &Platform{dir: abs}
	if err := p.load(root, quotesOnly); err != nil {
		return nil, fmt.Errorf("load simulated platform %s: %w", abs, err)
	}
	if err := p.prepareQuotes(); err != nil {
		return nil, fmt.Errorf("load simulated platform %s: %w", abs, err)
	}
	return p, nil
}

func (p *Platform) load(root *os.Root, quotesOnly bool) error {
	b, err := readFile(root, fileMetadata, maxMetadataFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	if err != nil {
		return err
	}
	m, err := parseMetadata(b)
	if err != nil {
		return fmt.Errorf("%s: %w", fileMetadata, err)
	}
	if p.qe, p.qeID, err = m.qeIdentity(); err != nil {
		return fmt.Errorf("%s: %w", fileMetadata, err)
	}

	if p.rootPEM, err = readFile(root, fileRootCA, maxPEMFileSize); err != nil {
		return err
	}
	roots, err := parseCerts(p.rootPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", fileRootCA, err)
	}
	if len(roots) != 1 {
		return fmt.Errorf("%s: expected one PEM certificate, found %d", fileRootCA, len(roots))
	}
	p.certs.root = roots[0]
	if err := p.certs.root.CheckSignatureFrom(p.certs.root); err != nil {
		return fmt.Errorf("%s: expected a self-signed root CA: %w", fileRootCA, err)
	}

	b, err = readFile(root, filePCKChain, maxPEMFileSize)
	if err != nil {
		return err
	}
	chain, err := sgx.ParsePCKChain(b)
	if err != nil {
		return fmt.Errorf("%s: %w", filePCKChain, err)
	}
	if len(chain) != 3 || !chain[2].Equal(p.certs.root) {
		return fmt.Errorf("%s: expected PCK certificate, PCK CA and the root of %s; found %d certificates ending with %q",
			filePCKChain, fileRootCA, len(chain), chain[len(chain)-1].Subject.CommonName)
	}
	p.certs.pck, p.certs.pckCA = chain[0], chain[1]
	if err := errors.Join(p.certs.pck.CheckSignatureFrom(p.certs.pckCA), p.certs.pckCA.CheckSignatureFrom(p.certs.root)); err != nil {
		return fmt.Errorf("%s: %w", filePCKChain, err)
	}
	if p.ext, err = sgx.ParsePCKExtensions(p.certs.pck); err != nil {
		return fmt.Errorf("%s: %w", filePCKChain, err)
	}
	caType, err := sgx.PCKCATypeOf(p.certs.pckCA.Subject.CommonName)
	if err != nil {
		return fmt.Errorf("%s: %w", filePCKChain, err)
	}
	if err := m.checkPCK(p.ext, caType); err != nil {
		return fmt.Errorf("%s does not match %s: %w", fileMetadata, filePCKChain, err)
	}

	if quotesOnly {
		p.signers = new(signers)
		return p.loadKeys(root, quoteKeys)
	}
	if err := p.loadSigning(root); err != nil {
		return err
	}
	return p.loadKeys(root, allKeys)
}

// loadSigning reads the TCB Signing chain, which only collateral needs.
func (p *Platform) loadSigning(root *os.Root) error {
	b, err := readFile(root, fileTCBInfoChain, maxPEMFileSize)
	if err != nil {
		return err
	}
	tcbChain, err := parseCerts(b)
	if err != nil {
		return fmt.Errorf("%s: %w", fileTCBInfoChain, err)
	}
	if len(tcbChain) == 0 {
		return fmt.Errorf("%s: expected the TCB Signing certificate and the root, found no certificate", fileTCBInfoChain)
	}
	p.certs.tcbSigning = tcbChain[0]
	if err := p.certs.tcbSigning.CheckSignatureFrom(p.certs.root); err != nil {
		return fmt.Errorf("%s: expected a TCB Signing certificate issued by the root: %w", fileTCBInfoChain, err)
	}
	return nil
}

// keyUse selects the keys loadKeys reads.
type keyUse int

const (
	allKeys     keyUse = iota
	quoteKeys          // the PCK and attestation keys, which quotes need
	signingKeys        // the others, which only collateral needs
)

// loadKeys reads the private keys that which selects and checks each against its certificate.
func (p *Platform) loadKeys(root *os.Root, which keyUse) error {
	certOf := map[**ecdsa.PrivateKey]*x509.Certificate{
		&p.keys.root: p.certs.root, &p.keys.pckCA: p.certs.pckCA,
		&p.keys.pck: p.certs.pck, &p.keys.tcbSigning: p.certs.tcbSigning,
	}
	for _, f := range p.keys.files() {
		forQuotes := f.key == &p.keys.pck || f.key == &p.keys.attestation
		if which == quoteKeys && !forQuotes || which == signingKeys && forQuotes {
			continue
		}
		b, err := readFile(root, f.name, maxPrivateKeyFileSize)
		if err != nil {
			return err
		}
		key, err := parseKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if cert := certOf[f.key]; cert != nil && !key.PublicKey.Equal(cert.PublicKey) {
			return fmt.Errorf("%s: key does not belong to certificate %q", f.name, cert.Subject.CommonName)
		}
		*f.key = key
	}
	return nil
}

// signers is the rest of a platform from [LoadForQuotes], loaded on first use.
type signers struct {
	once sync.Once
	err  error
}

// loadSigners loads what [LoadForQuotes] left out, once; a platform from [Load] or [Create]
// has it all. It writes only fields that quoting never reads, so quotes may be made meanwhile.
func (p *Platform) loadSigners() error {
	s := p.signers
	if s == nil {
		return nil
	}
	s.once.Do(func() {
		root, err := os.OpenRoot(p.dir)
		if err != nil {
			s.err = fmt.Errorf("load simulated platform: %w", err)
			return
		}
		defer root.Close()
		err = p.loadSigning(root)
		if err == nil {
			err = p.loadKeys(root, signingKeys)
		}
		if err != nil {
			s.err = fmt.Errorf("load simulated platform %s: %w", p.dir, err)
		}
	})
	return s.err
}

// parseKey decodes one PKCS #8 PEM block holding an ECDSA P-256 private key.
func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		return nil, errors.New("expected exactly one PEM block of type PRIVATE KEY (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("expected an ECDSA P-256 key, found %T", k)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("expected an ECDSA P-256 key, found curve %s", key.Curve.Params().Name)
	}
	return key, nil
}

// parseCerts decodes the PEM CERTIFICATE blocks in b; a block of another type is an error.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block of type %q; expected CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}
