package attest

import (
	"bytes"
	"context"
	"crypto/sha256"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
)

// Issuer produces evidence that binds reportData to the enclave it runs in.
type Issuer interface {
	// Quote returns an SGX quote whose report data is reportData.
	Quote(ctx context.Context, reportData [64]byte) ([]byte, error)
}

// SimIssuer quotes on a simulated SGX platform for a fixed enclave identity. It is not secure:
// anyone holding the platform directory can make the same quotes for any identity.
type SimIssuer struct {
	Platform *sim.Platform
	// Body is the enclave identity to report; its ReportData is replaced on every Quote.
	Body sgx.ReportBody
}

var _ Issuer = (*SimIssuer)(nil)

// Quote implements [Issuer].
func (s *SimIssuer) Quote(_ context.Context, reportData [64]byte) ([]byte, error) {
	body := s.Body
	body.ReportData = reportData
	return s.Platform.Quote(body)
}

// DefaultGramineDir is where Gramine exposes its attestation pseudo-files.
const DefaultGramineDir = "/dev/attestation"

// GramineIssuer gets quotes from Gramine's /dev/attestation interface inside an SGX enclave:
// it writes the report data to user_report_data and reads the quote back. Calls are
// serialized, because the pseudo-files are process-wide.
type GramineIssuer struct {
	Dir string // default DefaultGramineDir

	mu sync.Mutex // serializes the write-then-read sequence
}

var _ Issuer = (*GramineIssuer)(nil)

// Available reports whether Gramine's attestation interface exists.
func (g *GramineIssuer) Available() bool {
	_, err := os.Stat(filepath.Join(g.dir(), "quote"))
	return err == nil
}

func (g *GramineIssuer) dir() string {
	if g.Dir == "" {
		return DefaultGramineDir
	}
	return g.Dir
}

// Quote implements [Issuer].
func (g *GramineIssuer) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	dir := g.dir()
	if t, err := os.ReadFile(filepath.Join(dir, "attestation_type")); err == nil {
		if typ := string(bytes.TrimSpace(t)); typ != "dcap" {
			return nil, fmt.Errorf("gramine attestation type is %q; expected dcap (set sgx.remote_attestation = \"dcap\")", typ)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "user_report_data"), reportData[:], 0); err != nil {
		return nil, fmt.Errorf("write gramine user_report_data: %w", err)
	}
	f, err := os.Open(filepath.Join(dir, "quote"))
	if err != nil {
		return nil, fmt.Errorf("read gramine quote: %w", err)
	}
	defer f.Close()
	q, err := io.ReadAll(io.LimitReader(f, sgx.MaxQuoteSize+1))
	if err != nil {
		return nil, fmt.Errorf("read gramine quote: %w", err)
	}
	if len(q) == 0 || len(q) > sgx.MaxQuoteSize {
		return nil, fmt.Errorf("gramine quote has %d bytes; expected 1..%d", len(q), sgx.MaxQuoteSize)
	}
	return q, nil
}

// Simulated Coordinator identity. In simulation the Coordinator measures its own binary; its
// signer is a fixed value that is obviously not a real key, so nobody mistakes it for one.
var (
	// SimCoordinatorSigner is the MRSIGNER of a Coordinator in simulation mode.
	SimCoordinatorSigner = sha256.Sum256([]byte("cloister-sim-coordinator-signer-v1"))
)

// CoordinatorProdID is the ISVPRODID of the Cloister Coordinator enclave. It is not 1, the
// default of workloads: SGX derives the sealing key (Gramine's _sgx_mrsigner) from MRSIGNER and
// ISVPRODID, and a signer-based pin checks the same two, so a workload signed with the
// Coordinator's key and product ID could unseal the Coordinator's state and pass for it. The
// converter refuses this product ID for workloads.
const CoordinatorProdID = 0xC105

// CoordinatorSVN is the security version of this Coordinator build.
const CoordinatorSVN = 1

// Simulated enclave attributes: INIT | MODE64BIT, XFRM x87 | SSE. No DEBUG bit.
const (
	simAttributes = sgx.AttrInit | sgx.AttrMode64Bit
	simXFRM       = 0x3
)

// SimEnclaveBody returns the report body of a simulated enclave.
func SimEnclaveBody(mrenclave, mrsigner [32]byte, prodID, svn uint16) sgx.ReportBody {
	return sgx.ReportBody{
		MREnclave:  mrenclave,
		MRSigner:   mrsigner,
		ISVProdID:  prodID,
		ISVSVN:     svn,
		Attributes: sgx.Attributes{Flags: simAttributes, XFRM: simXFRM},
	}
}

// SimCoordinatorMeasurementTag is the domain tag of the simulated Coordinator's MRENCLAVE.
const SimCoordinatorMeasurementTag = "cloister-sim-coordinator-v1"

// ExecutableSHA256 hashes the running program's binary, which simulated enclaves measure.
func ExecutableSHA256() ([32]byte, error) {
	var sum [32]byte
	exe, err := os.Executable()
	if err != nil {
		return sum, fmt.Errorf("locate own executable: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return sum, fmt.Errorf("open own executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hash own executable: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
