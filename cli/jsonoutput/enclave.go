package jsonoutput

// EnclaveSign is printed by `cloister enclave sign`: the signed enclave manifest of a host
// program and the measurement `cloister launch` reports with it. Hex values are lowercase.
type EnclaveSign struct {
	// Manifest is the signed enclave manifest file written.
	Manifest string `json:"manifest"`
	// MREnclaveSimulation is the MRENCLAVE the launcher (LauncherSHA256) reports with this
	// manifest in simulation; a deployment-manifest package admits it with "mrenclave".
	MREnclaveSimulation string `json:"mrenclave_simulation"`
	// MRSigner is the SGX signer identity of the signing key.
	MRSigner string `json:"mrsigner"`
	// ISVProdID and ISVSVN are the enclave's product ID and security version.
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// Argv is the trusted command line.
	Argv []string `json:"argv"`
	// Files counts the trusted files; Bytes is their total size in bytes.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Links lists the symbolic links met, each listed as a trusted file at its own path and
	// at its target; empty when none.
	Links []EnclaveLink `json:"links"`
	// LauncherSHA256 is the SHA-256 of the launcher binary the measurement is for: the
	// cloister binary that runs `cloister launch`, unless --launcher named another.
	LauncherSHA256 string `json:"launcher_sha256"`
}

// EnclaveLink is a symbolic link among a host program's trusted files.
type EnclaveLink struct {
	// Path is the link's path; Target the file it resolves to.
	Path   string `json:"path"`
	Target string `json:"target"`
}
