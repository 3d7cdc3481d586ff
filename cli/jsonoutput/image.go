package jsonoutput

// ImageConvert is printed by `cloister image convert`: the converted image and the
// deployment-manifest entries that admit it.
type ImageConvert struct {
	ImageReport
	// ManifestEntry holds the entries to merge into the deployment manifest.
	ManifestEntry ManifestEntry `json:"manifest_entry"`
	// KeyFile is the --key-file given; omitted without one.
	KeyFile string `json:"key_file,omitempty"`
}

// ImageInspect is printed by `cloister image inspect`; after --verify the exit status is 1
// when verified is false.
type ImageInspect struct {
	ImageReport
	// Verified is true when --verify was given and every file matched the signed enclave
	// manifest.
	Verified bool `json:"verified"`
	// ManifestEntry holds the entries to merge into the deployment manifest.
	ManifestEntry ManifestEntry `json:"manifest_entry"`
}

// ImageReport describes a converted image. Hex values are lowercase.
type ImageReport struct {
	// Version is the version of this report's format, 1.
	Version int `json:"version"`
	// Image is the image reference; omitted when unknown.
	Image string `json:"image,omitempty"`
	// Digest is the image manifest's digest ("sha256:…"); omitted when unknown.
	Digest string `json:"digest,omitempty"`
	// MREnclaveSimulation is the MRENCLAVE the launcher reports in simulation mode, hex. On SGX
	// hardware the MRENCLAVE comes from gramine-sgx-sign.
	MREnclaveSimulation string `json:"mrenclave_simulation"`
	// MRSigner is the SGX signer identity of the signing key, hex.
	MRSigner string `json:"mrsigner"`
	// ISVProdID and ISVSVN are the enclave's product ID and security version.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// Argv is the trusted command line.
	Argv []string `json:"argv"`
	// Files counts the trusted (measured) files; Bytes is their total size in bytes.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// ProtectedFiles lists the encrypted files.
	ProtectedFiles []ProtectedFile `json:"protected_files"`
	// Exclude lists the patterns of paths that are not measured; omitted when none.
	Exclude []string `json:"exclude,omitempty"`
	// Unmeasured lists the directories the application writes that convert left unmeasured
	// (each also a "/path/" pattern in exclude): the image's VOLUME paths and --writable paths.
	// Omitted when none, and always by inspect.
	Unmeasured []Unmeasured `json:"unmeasured,omitempty"`
	// Volumes lists the encrypted volumes, sorted by path; omitted when none.
	Volumes []Volume `json:"volumes,omitempty"`
	// MemoryBytes is the memory-backed storage (/dev/shm) the protected files' plaintext needs,
	// in bytes: each file and each directory above them rounded up to 4 KiB pages.
	MemoryBytes int64 `json:"memory_bytes"`
	// Warnings are problems convert found but did not refuse, one sentence each (in text mode
	// they go to standard error, each after "warning: "); omitted when none, and always by
	// inspect.
	Warnings []string `json:"warnings,omitempty"`
	// Coordinator is the Coordinator identity the launcher accepts; omitted when it accepts
	// the simulated Coordinator only.
	Coordinator *CoordinatorIdentity `json:"coordinator,omitempty"`
	// LauncherSHA256 is the SHA-256 of the image's /cloister/launch, hex.
	LauncherSHA256 string `json:"launcher_sha256"`
	// Layers counts the layers by what the conversion did to them; all 0 for inspect.
	Layers LayerCounts `json:"layers"`
}

// ProtectedFile is an encrypted file of a converted image.
type ProtectedFile struct {
	// Path is the file's absolute path in the image.
	Path string `json:"path"`
	// Key names the Coordinator secret that holds the file key.
	Key string `json:"key"`
	// Size is the plaintext size, in bytes.
	Size int64 `json:"size"`
	// SHA256 is the SHA-256 of the encrypted file as stored in the image (below
	// /cloister/protected), hex.
	SHA256 string `json:"sha256"`
	// Version is the version number the encryption binds.
	Version uint64 `json:"version"`
	// Mode is the permission bits the plaintext gets, as in the original image: four octal
	// digits ("0640").
	Mode string `json:"mode"`
	// UID and GID are the plaintext's numeric owner and group, as in the original image.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Unmeasured is a directory of a converted image whose content is not measured.
type Unmeasured struct {
	// Path is the directory, its symbolic links resolved in the image.
	Path string `json:"path"`
	// Reason is "VOLUME" (the image configuration declares it) or "--writable".
	Reason string `json:"reason"`
	// Files counts the regular files the image holds there, which stay in it unmeasured.
	Files int `json:"files"`
}

// Volume is an encrypted volume of a converted image: a directory Gramine mounts encrypted with
// the key the Coordinator delivers (in simulation it is not encrypted).
type Volume struct {
	// Path is the mount point, its symbolic links resolved in the image.
	Path string `json:"path"`
	// Key names the secret that holds the volume's key.
	Key string `json:"key"`
	// Seed is true when the image held content at path: it was moved to seed_path, and the
	// launcher copies it into the volume on the first start that finds the volume empty.
	Seed bool `json:"seed,omitempty"`
	// Mode, UID and GID are the directory's, as in the original image (0755 root when absent):
	// four octal digits and numeric IDs.
	Mode string `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	// SeedPath is where the seed lies in the image (/cloister/seed followed by path); omitted
	// without a seed.
	SeedPath string `json:"seed_path,omitempty"`
	// SeedFiles and SeedBytes count the seed's regular files (trusted files) and their total
	// size; omitted without a seed.
	SeedFiles int   `json:"seed_files,omitempty"`
	SeedBytes int64 `json:"seed_bytes,omitempty"`
}

// CoordinatorIdentity is the Coordinator a converted image's launcher accepts: any MRENCLAVE
// listed, or the MRSIGNER with the product ID and at least the minimum security version.
type CoordinatorIdentity struct {
	// MREnclave lists the accepted measurements, hex; omitted when none.
	MREnclave []string `json:"mrenclave,omitempty"`
	// MRSigner is the accepted signer, hex; omitted when none.
	MRSigner string `json:"mrsigner,omitempty"`
	// ISVProdID and MinISVSVN go with mrsigner; omitted when 0.
	ISVProdID uint16 `json:"isvprodid,omitempty"`
	MinISVSVN uint16 `json:"min_isvsvn,omitempty"`
}

// LayerCounts counts a converted image's layers.
type LayerCounts struct {
	// Copied layers are the source's, byte for byte.
	Copied int `json:"copied"`
	// Rewritten layers held protected files and were written without their plaintext.
	Rewritten int `json:"rewritten"`
	// Added is the layer with /cloister and the encrypted files.
	Added int `json:"added"`
}

// ManifestEntry is the part of a deployment manifest that admits a converted image, in the
// manifest's own format (docs/manifest.md), to merge into a manifest.
type ManifestEntry struct {
	// Packages admit the image's signer, by package name.
	Packages map[string]ManifestPackage `json:"packages"`
	// Workloads run the package, by workload name.
	Workloads map[string]ManifestWorkload `json:"workloads"`
	// Secrets are the protected-file and volume keys to define; omitted without either.
	Secrets map[string]ManifestSecret `json:"secrets,omitempty"`
}

// ManifestPackage is a deployment-manifest package.
type ManifestPackage struct {
	// MRSigner is the signer, hex.
	MRSigner string `json:"mrsigner"`
	// ISVProdID is the product ID; MinISVSVN the lowest accepted security version.
	ISVProdID uint16 `json:"isvprodid"`
	MinISVSVN uint16 `json:"min_isvsvn"`
}

// ManifestWorkload is a deployment-manifest workload.
type ManifestWorkload struct {
	// Package names the workload's package.
	Package string `json:"package"`
	// FileKeys names the secrets that hold the protected-file keys and the encrypted volumes'
	// keys; omitted when none.
	FileKeys []string `json:"file_keys,omitempty"`
}

// ManifestSecret is a deployment-manifest secret.
type ManifestSecret struct {
	// Type is the secret's type: user-defined for protected-file keys (an operator uploads
	// them), symmetric-key for volume keys (the Coordinator generates them).
	Type string `json:"type"`
	// Size is the key size in bits of a symmetric-key secret (256); omitted otherwise.
	Size int `json:"size,omitempty"`
}

// ImageKeygen is printed by `cloister image keygen`.
type ImageKeygen struct {
	// File is the key file created.
	File string `json:"file"`
	// MRSigner is the key's SGX signer identity, hex.
	MRSigner string `json:"mrsigner"`
}

// ImageBench is printed by `cloister image bench`. Times are in seconds, sizes in bytes.
type ImageBench struct {
	// Files, Bytes and Layers describe the generated image.
	Files  int   `json:"files"`
	Bytes  int64 `json:"bytes"`
	Layers int   `json:"layers"`
	// FloorSeconds is the time to decompress every layer and hash every byte.
	FloorSeconds float64 `json:"floor_seconds"`
	// ConvertSeconds is the time of the conversion; Ratio is convert_seconds / floor_seconds.
	ConvertSeconds float64 `json:"convert_seconds"`
	Ratio          float64 `json:"ratio"`
	// PeakRSSBytes is the conversion's peak resident memory.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// TargetRatio and TargetPeakBytes are the targets; TargetsMet is true when both are met.
	TargetRatio     float64 `json:"target_ratio"`
	TargetPeakBytes int64   `json:"target_peak_rss_bytes"`
	TargetsMet      bool    `json:"targets_met"`
}
