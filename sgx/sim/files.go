package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// ErrIncomplete is returned (wrapped) by [Load] when the directory has no platform.json: it is
// not a simulated platform, or its creation was interrupted.
var ErrIncomplete = errors.New("not a complete simulated SGX platform (no platform.json)")

// ErrExists is returned (wrapped) by [Create] when the target exists and is not an empty
// directory. Create never overwrites a platform: others may have pinned its root.
var ErrExists = errors.New("target exists and is not an empty directory")

// File names of a platform directory. The collateral names are those of the DCAP test vectors.
const (
	fileMetadata           = "platform.json"
	fileReadme             = "README-SIMULATION.txt"
	fileRootCA             = "root_ca.pem"
	filePCKChain           = "pck_chain.pem"
	fileTCBInfo            = "tcb_info.json"
	fileTCBInfoChain       = "tcb_info_issuer_chain.pem"
	fileQEIdentity         = "qe_identity.json"
	fileQEIdentityChain    = "qe_identity_issuer_chain.pem"
	fileRootCACRL          = "root_ca_crl.der"
	filePCKCRL             = "pck_crl.der"
	filePCKCRLIssuerChain  = "pck_crl_issuer_chain.pem"
	dirPrivate             = "private"
	maxPEMFileSize         = 64 << 10
	maxMetadataFileSize    = 64 << 10
	maxPrivateKeyFileSize  = 8 << 10
	publicPerm, secretPerm = 0o644, 0o600
)

// readme is README-SIMULATION.txt.
const readme = `THIS IS A SIMULATED INTEL SGX PLATFORM. IT IS NOT SECURE.

This directory was made by Cloister (cloister sim init, package sgx/sim). It holds a
simulated "Intel SGX Root CA", PCK CA and PCK certificate, a TCB Signing certificate, signed
TCB Info and QE Identity, CRLs, and in private/ the private keys of all of them.

Anyone who can read this directory can forge an SGX quote for ANY enclave measurement, ANY
TCB status and ANY report data. A quote made with it proves nothing about any hardware.

Use it for development, tests and demos only. Never pin root_ca.pem where real SGX evidence
is expected: a verifier that trusts it accepts forged quotes. Real verifiers pin Intel's SGX
Root CA. A Cloister Coordinator trusts this root only when started with --simulation, and
then says so on every status answer, log line and certificate.

Files:
  root_ca.pem                   the simulated root CA (pin it in tests: --root DIR/root_ca.pem)
  pck_chain.pem                 PCK certificate, PCK CA, root (as carried in quotes)
  tcb_info.json, qe_identity.json and their *_issuer_chain.pem, root_ca_crl.der,
  pck_crl.der, pck_crl_issuer_chain.pem
                                collateral, in the layout of real Intel PCS collateral
  platform.json                 metadata: FMSPC, PCE-ID, SGX type, PCK SVNs, QE identity
  private/                      the private keys (PKCS #8 PEM)
`

// readFile reads name below root, refusing files larger than limit bytes.
func readFile(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d bytes allowed", name, limit)
	}
	return b, nil
}

// writeFile writes name below root atomically: to a temporary file in the same directory, then
// renamed over name, so readers see the old content or the new, never a part. It does not
// fsync: a simulated platform is test data, and fsync made Create take up to seconds on some
// disks. After a power loss, Load (and verify.LoadCollateral) report a damaged file.
func writeFile(root *os.Root, name string, data []byte, perm fs.FileMode) (err error) {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tmp-"+rand.Text()[:10])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			root.Remove(tmp)
		}
	}()
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
