package image

import (
	"encoding/hex"
	"regexp"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// Report describes a converted image: its identity as the Coordinator sees
// it and what its enclave manifest measures. [Convert] and [Inspect] return
// it; the CLI prints it with --output json. Field names are a stable,
// versioned contract (see Version).
type Report struct {
	// Version is the version of this report format, 1.
	Version int `json:"version"`
	// Image is the image reference, when known.
	Image string `json:"image,omitempty"`
	// Digest is the image manifest's digest ("sha256:…").
	Digest string `json:"digest,omitempty"`
	// MREnclaveSimulation is the MRENCLAVE the launcher reports in
	// simulation mode (enclave.SimMRENCLAVE). Under Gramine the MRENCLAVE
	// comes from gramine-sgx-sign.
	MREnclaveSimulation string `json:"mrenclave_simulation"`
	// MRSigner is the SGX signer identity of the signing key.
	MRSigner string `json:"mrsigner"`
	// ISVProdID and ISVSVN are the enclave's product ID and security version.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// Argv is the trusted command line.
	Argv []string `json:"argv"`
	// Files and Bytes count the trusted files and their total size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// ProtectedFiles lists the encrypted files.
	ProtectedFiles []enclave.ProtectedFile `json:"protected_files"`
	// Exclude lists the patterns of paths that are not measured.
	Exclude []string `json:"exclude,omitempty"`
	// Unmeasured lists the directories the application writes that are
	// left unmeasured (VOLUME and writable paths, also in Exclude), with
	// the files the image holds there; only in reports of [Convert].
	Unmeasured []Unmeasured `json:"unmeasured,omitempty"`
	// Volumes lists the encrypted volumes.
	Volumes []Volume `json:"volumes,omitempty"`
	// MemoryBytes is the memory-backed storage (/dev/shm) the protected
	// files' plaintext needs, in bytes ([enclave.Manifest.PlaintextBytes]).
	MemoryBytes int64 `json:"memory_bytes"`
	// Warnings are problems the conversion found but did not refuse, one
	// sentence each; only in reports of [Convert].
	Warnings []string `json:"warnings,omitempty"`
	// Coordinator is the Coordinator identity the launcher accepts; nil
	// means the simulation default.
	Coordinator *enclave.Coordinator `json:"coordinator,omitempty"`
	// LauncherSHA256 is the SHA-256 of /cloister/launch.
	LauncherSHA256 string `json:"launcher_sha256"`
	// Layers counts the layers by what the conversion did to them; zero
	// in reports of [Inspect].
	Layers LayerCounts `json:"layers"`
}

// Volume is an encrypted volume of a converted image.
type Volume struct {
	enclave.Volume
	// SeedPath is where the seed is stored in the image
	// ([enclave.SeedPath]); empty unless Seed is set.
	SeedPath string `json:"seed_path,omitempty"`
	// SeedFiles and SeedBytes count the seed's regular files (trusted
	// files below SeedPath) and their total size.
	SeedFiles int   `json:"seed_files,omitempty"`
	SeedBytes int64 `json:"seed_bytes,omitempty"`
}

// LayerCounts counts the layers of a converted image.
type LayerCounts struct {
	// Copied layers are the source's blobs, byte for byte.
	Copied int `json:"copied"`
	// Rewritten layers held protected content and were written without it.
	Rewritten int `json:"rewritten"`
	// Added is the layer with /cloister and the encrypted files.
	Added int `json:"added"`
}

// ReportVersion is the current [Report] format version.
const ReportVersion = 1

// newReport describes the signed manifest s with launcher hash ls.
func newReport(s *enclave.Signed, ls enclave.Digest) Report {
	m := s.Manifest
	r := Report{
		Version:             ReportVersion,
		MREnclaveSimulation: hexDigest(enclave.SimMRENCLAVE(ls, s.Raw)),
		MRSigner:            hexDigest(s.MRSigner()),
		ISVProdID:           m.ISVProdID,
		ISVSVN:              m.ISVSVN,
		Argv:                m.Argv,
		Files:               len(m.Files),
		ProtectedFiles:      m.ProtectedFiles,
		Exclude:             m.Exclude,
		Coordinator:         m.Coordinator,
		LauncherSHA256:      ls.String(),
		MemoryBytes:         m.PlaintextBytes(),
	}
	for _, v := range m.Volumes {
		rv := Volume{Volume: v}
		if v.Seed {
			rv.SeedPath = enclave.SeedPath(v.Path)
			for _, f := range m.Files {
				if strings.HasPrefix(f.Path, rv.SeedPath+"/") {
					rv.SeedFiles++
					rv.SeedBytes += f.Size
				}
			}
		}
		r.Volumes = append(r.Volumes, rv)
	}
	if r.ProtectedFiles == nil {
		r.ProtectedFiles = []enclave.ProtectedFile{}
	}
	for _, f := range m.Files {
		r.Bytes += f.Size
	}
	return r
}

func hexDigest(d [32]byte) string { return hex.EncodeToString(d[:]) }

// Snippet is a piece of deployment manifest to paste: the package that
// admits the image (by signer, product and minimum security version), a
// workload that runs it and receives the protected-file and volume keys,
// the protected-file keys as user-defined secrets (an operator uploads
// them) and the volume keys as 256-bit symmetric keys the Coordinator
// generates (shared by the workload's instances, so a rescheduled instance
// reads the volume).
type Snippet struct {
	Packages  map[string]SnippetPackage  `json:"packages"`
	Workloads map[string]SnippetWorkload `json:"workloads"`
	Secrets   map[string]SnippetSecret   `json:"secrets,omitempty"`
}

// SnippetPackage is a deployment-manifest package admitting a signer.
type SnippetPackage struct {
	MRSigner  string `json:"mrsigner"`
	ISVProdID uint16 `json:"isvprodid"`
	MinISVSVN uint16 `json:"min_isvsvn"`
}

// SnippetWorkload is a deployment-manifest workload.
type SnippetWorkload struct {
	Package  string   `json:"package"`
	FileKeys []string `json:"file_keys,omitempty"`
}

// SnippetSecret is a deployment-manifest secret.
type SnippetSecret struct {
	Type string `json:"type"`
	// Size is the key length in bits of a symmetric-key secret.
	Size int `json:"size,omitempty"`
}

// Secret types of a [Snippet].
const (
	SecretUserDefined  = "user-defined"
	SecretSymmetricKey = "symmetric-key"
)

// Snippet returns the deployment-manifest entries for the image, under the
// name (used for the package and the workload; see [PackageName]).
func (r *Report) Snippet(name string) Snippet {
	s := Snippet{
		Packages:  map[string]SnippetPackage{name: {MRSigner: r.MRSigner, ISVProdID: r.ISVProdID, MinISVSVN: r.ISVSVN}},
		Workloads: map[string]SnippetWorkload{name: {Package: name}},
	}
	var keys []string
	secrets := map[string]SnippetSecret{}
	for _, f := range r.ProtectedFiles {
		if !slices.Contains(keys, f.Key) {
			keys = append(keys, f.Key)
			secrets[f.Key] = SnippetSecret{Type: SecretUserDefined}
		}
	}
	for _, v := range r.Volumes {
		if !slices.Contains(keys, v.Key) {
			keys = append(keys, v.Key)
			secrets[v.Key] = SnippetSecret{Type: SecretSymmetricKey, Size: 256}
		}
	}
	if len(keys) > 0 {
		w := s.Workloads[name]
		w.FileKeys = keys
		s.Workloads[name] = w
		s.Secrets = secrets
	}
	return s
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// PackageName derives a deployment-manifest package and workload name from
// an image reference: the last element of its repository or directory, as
// a DNS label ("docker://r.example/team/web:1" gives "web"); "app" when
// nothing usable is left.
func PackageName(ref string) string {
	s := ref
	if r, err := ParseReference(ref); err == nil {
		s = r.baseName()
	} else {
		s, _, _ = strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	}
	s = strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "app"
	}
	return s
}
