package sim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/cloister-dev/cloister/sgx"
)

// The simulated Quoting Enclave's identity, fixed and obviously not Intel's.
var (
	qeMREnclave = sha256.Sum256([]byte("cloister-sim-qe-mrenclave-v1"))
	qeMRSigner  = sha256.Sum256([]byte("cloister-sim-qe-mrsigner-v1"))
)

const (
	qeISVProdID = 1
	qeFlags     = sgx.AttrInit | sgx.AttrMode64Bit | sgx.AttrProvisionKey // as Intel's QE
	qeXFRM      = 0xe7                                                    // as Intel's QE
)

// QEIdentity is the identity of a platform's simulated Quoting Enclave: what its QE reports
// carry and what its QE Identity collateral expects.
type QEIdentity struct {
	MREnclave  [32]byte
	MRSigner   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	Attributes sgx.Attributes
	MiscSelect uint32
}

// Platform is a simulated SGX platform loaded from its directory. It is immutable and safe for
// concurrent use; obtain one from [Create], [Load] or [LoadForQuotes].
type Platform struct {
	dir     string // absolute
	certs   certSet
	keys    keySet
	ext     *sgx.PCKExtensions
	qe      QEIdentity
	qeID    [16]byte
	rootPEM []byte

	// quoteTemplate is a complete quote with a zero report body and a zero signature.
	quoteTemplate []byte
	// signers, if set, loads the keys and certificates that only collateral needs, which
	// LoadForQuotes leaves out.
	signers *signers
}

// Create makes a new simulated SGX platform in dir and returns it loaded (see the package
// documentation for the layout). dir must not exist or be an empty directory; otherwise Create
// returns an error wrapping [ErrExists]. Its parent is created if needed.
//
// Create builds the platform in a temporary sibling directory and renames it into place, so
// dir either does not appear or is complete; an interrupted Create may leave a hidden
// ".NAME.creating-*" sibling behind.
func Create(dir string, opts Options) (*Platform, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if err := checkTarget(dir); err != nil {
		return nil, fmt.Errorf("create simulated platform %s: %w", dir, err)
	}
	p, m, err := newPlatform(o)
	if err != nil {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".creating-")
	if err != nil {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := p.write(tmp, m, &o.Collateral); err != nil {
		return nil, fmt.Errorf("create simulated platform %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	if err := checkTarget(dir); err != nil {
		return nil, fmt.Errorf("create simulated platform %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("create simulated platform: %w", err)
	}
	return Load(dir)
}

// checkTarget returns ErrExists unless dir is absent or an empty directory.
func checkTarget(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: found a %v", ErrExists, fi.Mode().Type())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: found %d entries, such as %q", ErrExists, len(entries), entries[0].Name())
	}
	return nil
}

// newPlatform generates the keys, identities and certificates of a new platform.
func newPlatform(o Options) (*Platform, metadata, error) {
	keys, err := newKeySet()
	if err != nil {
		return nil, metadata{}, err
	}
	ext := &sgx.PCKExtensions{TCB: *o.TCB, FMSPC: o.FMSPC, SGXType: sgx.SGXTypeStandard}
	rand.Read(ext.PPID[:])
	if o.CAType == sgx.PCKCAPlatform {
		ext.SGXType = sgx.SGXTypeScalable
		ext.PlatformInstanceID = make([]byte, 16)
		rand.Read(ext.PlatformInstanceID)
		ext.Configuration = &sgx.PlatformConfiguration{
			DynamicPlatform: new(true),
			CachedKeys:      new(false),
			SMTEnabled:      new(false),
		}
	}
	certs, err := issueCerts(&keys, ext, o.CAType, o.Now)
	if err != nil {
		return nil, metadata{}, err
	}
	p := &Platform{
		certs: certs,
		keys:  keys,
		ext:   ext,
		qe: QEIdentity{
			MREnclave:  qeMREnclave,
			MRSigner:   qeMRSigner,
			ISVProdID:  qeISVProdID,
			ISVSVN:     *o.QESVN,
			Attributes: sgx.Attributes{Flags: qeFlags, XFRM: qeXFRM},
		},
	}
	rand.Read(p.qeID[:])
	m := newMetadata(o.Now, o.CAType, ext, certs.pck.SerialNumber.Bytes(), p.qe, p.qeID)
	return p, m, nil
}

// write writes the whole platform into dir: keys, certificates, collateral, and platform.json
// last.
func (p *Platform) write(dir string, m metadata, c *CollateralOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Mkdir(dirPrivate, 0o700); err != nil {
		return err
	}
	for _, f := range p.keys.files() {
		der, err := x509.MarshalPKCS8PrivateKey(*f.key)
		if err != nil {
			return fmt.Errorf("encode %s: %w", f.name, err)
		}
		if err := writeFile(root, f.name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), secretPerm); err != nil {
			return err
		}
	}
	if err := writeFile(root, fileRootCA, pemCerts(p.certs.root), publicPerm); err != nil {
		return err
	}
	if err := writeFile(root, filePCKChain, pemCerts(p.certs.pck, p.certs.pckCA, p.certs.root), publicPerm); err != nil {
		return err
	}
	if err := p.writeCollateral(root, c); err != nil {
		return err
	}
	meta, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", fileMetadata, err)
	}
	return writeFile(root, fileMetadata, append(meta, '\n'), publicPerm)
}

// Root returns the simulated root CA certificate: the root a verifier pins to accept this
// platform's quotes. The certificate is shared; do not modify it.
func (p *Platform) Root() *x509.Certificate { return p.certs.root }

// RootPEM returns the content of root_ca.pem.
func (p *Platform) RootPEM() []byte { return slices.Clone(p.rootPEM) }

// Dir returns the platform's directory as an absolute path.
func (p *Platform) Dir() string { return p.dir }

// CollateralDir returns the directory of the platform's own collateral, which is [Platform.Dir].
func (p *Platform) CollateralDir() string { return p.dir }

// FMSPC returns the platform's FMSPC, as in its PCK certificate and TCB Info.
func (p *Platform) FMSPC() [6]byte { return p.ext.FMSPC }

// QEIdentity returns the identity of the platform's simulated Quoting Enclave.
func (p *Platform) QEIdentity() QEIdentity { return p.qe }
