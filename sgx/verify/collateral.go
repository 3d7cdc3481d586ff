package verify

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Collateral is what verifying a quote needs besides the quote: Intel's TCB Info and QE
// Identity with the chains that sign them, and the CRLs. Any field may be nil: Verify reports
// precisely what is missing ([ErrCollateralMissing] for TCB Info, QE Identity or their chains;
// [Platform.CRLChecked] false for CRLs).
//
// Chains are ordered leaf first and end with the root certificate. A nil QEIdentityIssuerChain
// means the TCB Info issuer chain signs the QE Identity too (Intel uses one TCB Signing key for
// both). The Verifier uses the raw bytes of each item (TCBInfo.Raw, Certificate.Raw,
// RevocationList.Raw) and parses them itself.
type Collateral struct {
	TCBInfo               *TCBInfo             // for the platform's FMSPC
	TCBInfoIssuerChain    []*x509.Certificate  // TCB Signing certificate, root
	QEIdentity            *QEIdentity          // of the Quoting Enclave
	QEIdentityIssuerChain []*x509.Certificate  // signing certificate, root; nil: TCBInfoIssuerChain
	RootCACRL             *x509.RevocationList // Intel SGX Root CA CRL
	PCKCRL                *x509.RevocationList // CRL of the PCK certificate's CA
	PCKCRLIssuerChain     []*x509.Certificate  // PCK CA, root (optional)
}

// collateralFiles is the directory layout: each item's file name and the suffixes it may have
// (the first is the one WriteDir writes).
var collateralFiles = []struct {
	name     string
	variants []string
}{
	{"tcb_info", []string{".json"}},
	{"tcb_info_issuer_chain", []string{".pem"}},
	{"qe_identity", []string{".json"}},
	{"qe_identity_issuer_chain", []string{".pem"}},
	{"root_ca_crl", []string{".der", "", ".pem"}},
	{"pck_crl", []string{".der", "", ".pem"}},
	{"pck_crl_issuer_chain", []string{".pem"}},
}

// load parses the content of item name into c.
func (c *Collateral) load(name string, b []byte) (err error) {
	switch name {
	case "tcb_info":
		c.TCBInfo, err = ParseTCBInfo(b)
	case "tcb_info_issuer_chain":
		c.TCBInfoIssuerChain, err = ParseCertChain(b)
	case "qe_identity":
		c.QEIdentity, err = ParseQEIdentity(b)
	case "qe_identity_issuer_chain":
		c.QEIdentityIssuerChain, err = ParseCertChain(b)
	case "root_ca_crl":
		c.RootCACRL, err = ParseCRL(b)
	case "pck_crl":
		c.PCKCRL, err = ParseCRL(b)
	case "pck_crl_issuer_chain":
		c.PCKCRLIssuerChain, err = ParseCertChain(b)
	default:
		err = fmt.Errorf("unknown collateral item %q", name)
	}
	return err
}

// encode returns the file content of item name, or nil when c does not hold it.
func (c *Collateral) encode(name string) ([]byte, error) {
	switch name {
	case "tcb_info":
		return docBody(c.TCBInfo != nil, c.TCBInfo.rawBody())
	case "tcb_info_issuer_chain":
		return encodeChain(c.TCBInfoIssuerChain)
	case "qe_identity":
		return docBody(c.QEIdentity != nil, c.QEIdentity.rawBody())
	case "qe_identity_issuer_chain":
		return encodeChain(c.QEIdentityIssuerChain)
	case "root_ca_crl":
		return crlDER(c.RootCACRL)
	case "pck_crl":
		return crlDER(c.PCKCRL)
	case "pck_crl_issuer_chain":
		return encodeChain(c.PCKCRLIssuerChain)
	}
	return nil, fmt.Errorf("unknown collateral item %q", name)
}

// LoadCollateral reads a collateral directory: tcb_info.json, tcb_info_issuer_chain.pem,
// qe_identity.json, qe_identity_issuer_chain.pem (when absent, the TCB Info issuer chain is used
// for the QE Identity), root_ca_crl and pck_crl (each as "root_ca_crl", "root_ca_crl.der" or
// "root_ca_crl.pem", DER or PEM by content) and pck_crl_issuer_chain.pem. This is the layout of
// the shared DCAP test vectors and of simulated platforms.
//
// Absent files leave their fields nil. A file that does not parse, is larger than
// [MaxCollateralItemSize] or exists under two names is an error naming the file.
func LoadCollateral(dir string) (*Collateral, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("load collateral: %w", err)
	}
	defer root.Close()
	c := &Collateral{}
	for _, f := range collateralFiles {
		name, b, err := readVariant(root, f.name, f.variants)
		if err != nil {
			return nil, fmt.Errorf("load collateral %s: %w", dir, err)
		}
		if name == "" {
			continue
		}
		if err := c.load(f.name, b); err != nil {
			return nil, fmt.Errorf("load collateral %s: %w", filepath.Join(dir, name), err)
		}
	}
	if c.QEIdentityIssuerChain == nil && c.QEIdentity != nil {
		c.QEIdentityIssuerChain = c.TCBInfoIssuerChain
	}
	return c, nil
}

// readVariant returns the name and content of the one existing variant of base, or "" if none.
func readVariant(root *os.Root, base string, variants []string) (string, []byte, error) {
	var found string
	var data []byte
	for _, suffix := range variants {
		name := base + suffix
		file, err := root.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		b, err := io.ReadAll(io.LimitReader(file, MaxCollateralItemSize+1))
		file.Close()
		if err != nil {
			return "", nil, fmt.Errorf("read %s: %w", name, err)
		}
		if len(b) > MaxCollateralItemSize {
			return "", nil, fmt.Errorf("%s: larger than the %d bytes allowed", name, MaxCollateralItemSize)
		}
		if found != "" {
			return "", nil, fmt.Errorf("both %s and %s exist; expected one", found, name)
		}
		found, data = name, b
	}
	return found, data, nil
}

// WriteDir writes c to dir in the layout LoadCollateral reads, creating dir if needed. Each file
// is written to a temporary name, synced and renamed into place; files of absent items (and
// other spellings of written ones) are removed, so LoadCollateral(dir) returns what c holds.
// TCBInfo and QEIdentity must come from ParseTCBInfo and ParseQEIdentity (their Raw body is
// written). Files are replaced one by one: a concurrent LoadCollateral may see old and new
// items together. Concurrent WriteDir calls on one directory are not supported.
func (c *Collateral) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write collateral: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write collateral: %w", err)
	}
	defer root.Close()
	for _, f := range collateralFiles {
		data, err := c.encode(f.name)
		if err != nil {
			return fmt.Errorf("write collateral %s: %w", f.name, err)
		}
		keep := ""
		if data != nil {
			keep = f.name + f.variants[0]
			if err := writeAtomic(root, keep, data); err != nil {
				return fmt.Errorf("write collateral: %w", err)
			}
		}
		for _, suffix := range f.variants {
			if name := f.name + suffix; name != keep {
				if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("write collateral: %w", err)
				}
			}
		}
	}
	return nil
}

func writeAtomic(root *os.Root, name string, data []byte) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := name + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func docBody(present bool, raw []byte) ([]byte, error) {
	if !present {
		return nil, nil
	}
	if len(raw) == 0 {
		return nil, errNotParsed
	}
	return raw, nil
}

func encodeChain(chain []*x509.Certificate) ([]byte, error) {
	if len(chain) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	for _, c := range chain {
		if len(c.Raw) == 0 {
			return nil, fmt.Errorf("certificate %q has no DER encoding (Raw is empty)", c.Subject.CommonName)
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes(), nil
}

func crlDER(crl *x509.RevocationList) ([]byte, error) {
	if crl == nil {
		return nil, nil
	}
	if len(crl.Raw) == 0 {
		return nil, errors.New("CRL has no DER encoding (Raw is empty)")
	}
	return crl.Raw, nil
}

// fingerprint is a SHA-256 over the raw bytes of every item, the key of verified collateral.
func (c *Collateral) fingerprint() [32]byte {
	d := newDigester("collateral")
	addDoc(d, c.TCBInfo != nil, c.TCBInfo.rawBody())
	addChain(d, c.TCBInfoIssuerChain)
	addDoc(d, c.QEIdentity != nil, c.QEIdentity.rawBody())
	addChain(d, c.QEIdentityIssuerChain)
	addDoc(d, c.RootCACRL != nil, crlRaw(c.RootCACRL))
	addDoc(d, c.PCKCRL != nil, crlRaw(c.PCKCRL))
	addChain(d, c.PCKCRLIssuerChain)
	return d.sum()
}

func addDoc(d *digester, present bool, raw []byte) {
	if present {
		d.add([]byte{1}).add(raw)
	} else {
		d.add([]byte{0})
	}
}

func addChain(d *digester, chain []*x509.Certificate) {
	d.add(binary.BigEndian.AppendUint64(nil, uint64(len(chain))))
	for _, c := range chain {
		d.add(c.Raw)
	}
}

func crlRaw(crl *x509.RevocationList) []byte {
	if crl == nil {
		return nil
	}
	return crl.Raw
}

func (t *TCBInfo) rawBody() []byte {
	if t == nil {
		return nil
	}
	return t.body
}

func (q *QEIdentity) rawBody() []byte {
	if q == nil {
		return nil
	}
	return q.body
}
